/// OpenAI's `response` object (the Responses API): what `POST /v1/responses` answers without
/// `stream`, and what its lifecycle events (`response.created`, `response.completed`, …) carry.
///
/// Only what the fleet serves is filled in: one assistant `message` item with one `output_text`
/// part — after a `reasoning` item with one `reasoning_text` part when the model thought first —
/// no tools, nothing stored. Optional fields are written as `null`, as OpenAI writes them,
/// so typed clients (the official SDKs) find every key they read.
public struct ResponseObject: Codable, Sendable, Hashable {
    /// One content part of a message: `output_text`, or a `refusal` (the model declined), whose
    /// text is then ``text`` and is written as OpenAI's `refusal` member, without the others.
    public struct OutputText: Codable, Sendable, Hashable {
        public var type = "output_text"
        public var text: String
        public var annotations: [JSONValue] = []
        public var logprobs: [JSONValue] = []

        public init(text: String) { self.text = text }

        /// A `refusal` part.
        public static func refusal(_ text: String) -> Self {
            var part = Self(text: text)
            part.type = "refusal"
            return part
        }

        /// Whether this is a `refusal` part.
        public var isRefusal: Bool { self.type == "refusal" }

        private enum CodingKeys: String, CodingKey { case type, text, annotations, logprobs, refusal }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.type = try c.decode(String.self, forKey: .type)
            if self.type == "refusal" {
                self.text = try c.decode(String.self, forKey: .refusal)
            } else {
                self.text = try c.decode(String.self, forKey: .text)
                self.annotations = try c.decodeIfPresent([JSONValue].self, forKey: .annotations) ?? []
                self.logprobs = try c.decodeIfPresent([JSONValue].self, forKey: .logprobs) ?? []
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.type, forKey: .type)
            if self.isRefusal {
                try c.encode(self.text, forKey: .refusal)
            } else {
                try c.encode(self.text, forKey: .text)
                try c.encode(self.annotations, forKey: .annotations)
                try c.encode(self.logprobs, forKey: .logprobs)
            }
        }
    }

    /// One output item: an assistant `message`.
    public struct OutputMessage: Codable, Sendable, Hashable {
        public var type = "message"
        public var id: String
        /// `in_progress`, `completed` or `incomplete`.
        public var status: String
        public var role = "assistant"
        public var content: [OutputText]

        public init(id: String, status: String, content: [OutputText]) {
            self.id = id
            self.status = status
            self.content = content
        }
    }

    /// One `reasoning_text` content part: a reasoning model's thinking, as open models give it.
    public struct ReasoningText: Codable, Sendable, Hashable {
        public var type = "reasoning_text"
        public var text: String

        public init(text: String) { self.text = text }
    }

    /// One output item: the model's `reasoning`, before its message. No summary (the fleet's models
    /// give their thinking as text) and nothing encrypted (nothing is stored).
    public struct OutputReasoning: Codable, Sendable, Hashable {
        public var type = "reasoning"
        public var id: String
        public var summary: [JSONValue] = []
        public var content: [ReasoningText]
        public var encryptedContent: String?
        /// `in_progress`, `completed` or `incomplete`.
        public var status: String

        public init(id: String, status: String, content: [ReasoningText]) {
            self.id = id
            self.status = status
            self.content = content
        }

        enum CodingKeys: String, CodingKey {
            case type, id, summary, content, status
            case encryptedContent = "encrypted_content"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.type, forKey: .type)
            try c.encode(self.id, forKey: .id)
            try c.encode(self.summary, forKey: .summary)
            try c.encode(self.content, forKey: .content)
            try c.encode(self.encryptedContent, forKey: .encryptedContent)  // null, as OpenAI sends it
            try c.encode(self.status, forKey: .status)
        }
    }

    /// An output item: a `message` or a `reasoning`, told apart by `type`.
    /// A function the model called (`function_call`): the app runs it and sends its result back as a
    /// `function_call_output` input item with the same `call_id`.
    public struct OutputFunctionCall: Codable, Sendable, Hashable {
        public var type = "function_call"
        public var id: String
        public var callID: String
        public var name: String
        /// The arguments, a JSON text the model wrote.
        public var arguments: String
        public var status: String

        public init(id: String, callID: String, name: String, arguments: String, status: String) {
            self.id = id
            self.callID = callID
            self.name = name
            self.arguments = arguments
            self.status = status
        }

        enum CodingKeys: String, CodingKey {
            case type, id, name, arguments, status
            case callID = "call_id"
        }
    }

    public enum OutputItem: Codable, Sendable, Hashable {
        case message(OutputMessage)
        case reasoning(OutputReasoning)
        case functionCall(OutputFunctionCall)

        /// The message, when this is one.
        public var message: OutputMessage? {
            if case .message(let message) = self { return message }
            return nil
        }

        /// The reasoning, when this is one.
        public var reasoning: OutputReasoning? {
            if case .reasoning(let reasoning) = self { return reasoning }
            return nil
        }

        private enum CodingKeys: String, CodingKey { case type }

        public init(from decoder: any Decoder) throws {
            let type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
            switch type {
            case "reasoning": self = .reasoning(try OutputReasoning(from: decoder))
            case "function_call": self = .functionCall(try OutputFunctionCall(from: decoder))
            default: self = .message(try OutputMessage(from: decoder))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .message(let message): try message.encode(to: encoder)
            case .reasoning(let reasoning): try reasoning.encode(to: encoder)
            case .functionCall(let call): try call.encode(to: encoder)
            }
        }
    }

    /// A content part: `output_text` or `reasoning_text`, told apart by `type`.
    public enum ContentPart: Codable, Sendable, Hashable {
        case text(OutputText)
        case reasoning(ReasoningText)

        private enum CodingKeys: String, CodingKey { case type }

        public init(from decoder: any Decoder) throws {
            let type = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .type)
            self =
                type == "reasoning_text"
                ? .reasoning(try ReasoningText(from: decoder)) : .text(try OutputText(from: decoder))
        }

        public func encode(to encoder: any Encoder) throws {
            switch self {
            case .text(let text): try text.encode(to: encoder)
            case .reasoning(let reasoning): try reasoning.encode(to: encoder)
            }
        }
    }

    /// `usage`: input, output and total tokens.
    public struct TokenUsage: Codable, Sendable, Hashable {
        /// Cached prompt tokens as the upstream that answered counted them (a car's runtime reports none).
        public struct InputDetails: Codable, Sendable, Hashable {
            public var cachedTokens = 0
            public var cacheWriteTokens = 0
            enum CodingKeys: String, CodingKey {
                case cachedTokens = "cached_tokens"
                case cacheWriteTokens = "cache_write_tokens"
            }
        }
        public struct OutputDetails: Codable, Sendable, Hashable {
            public var reasoningTokens = 0
            enum CodingKeys: String, CodingKey { case reasoningTokens = "reasoning_tokens" }
        }

        public var inputTokens: Int
        public var inputTokensDetails = InputDetails()
        public var outputTokens: Int
        public var outputTokensDetails = OutputDetails()
        public var totalTokens: Int

        /// The chat usage of the completion that produced the response, and its details when the
        /// upstream gave them.
        public init(_ usage: Usage, details: UsageDetails? = nil) {
            self.inputTokens = usage.promptTokens
            self.outputTokens = usage.completionTokens
            self.totalTokens = usage.totalTokens
            if let details {
                self.inputTokensDetails.cachedTokens = min(details.cachedTokens, usage.promptTokens)
                self.outputTokensDetails.reasoningTokens = min(details.reasoningTokens, usage.completionTokens)
            }
        }

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens"
            case inputTokensDetails = "input_tokens_details"
            case outputTokens = "output_tokens"
            case outputTokensDetails = "output_tokens_details"
            case totalTokens = "total_tokens"
        }
    }

    /// `error` of a failed response.
    public struct Failure: Codable, Sendable, Hashable {
        public var code: String
        public var message: String
        public init(code: String, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// `incomplete_details`.
    public struct IncompleteDetails: Codable, Sendable, Hashable {
        /// `max_output_tokens` or `content_filter`.
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    public var id: String
    public var object = "response"
    public var createdAt: Int
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    public var status: String
    public var error: Failure?
    public var incompleteDetails: IncompleteDetails?
    public var instructions: String?
    public var maxOutputTokens: Int?
    public var model: String
    public var output: [OutputItem] = []
    public var parallelToolCalls = false
    public var previousResponseID: String?
    public var store = false
    public var background = false
    public var temperature: Double?
    public var topP: Double?
    public var text: JSONValue = .object(["format": .object(["type": .string("text")])])
    public var toolChoice: JSONValue = .string("auto")
    public var tools: [JSONValue] = []
    public var truncation = "disabled"
    public var usage: TokenUsage?
    public var user: String?
    public var metadata: [String: String] = [:]

    /// A response `in_progress`, with no output yet.
    public init(id: String, createdAt: Int, model: String) {
        self.id = id
        self.createdAt = createdAt
        self.status = "in_progress"
        self.model = model
    }

    enum CodingKeys: String, CodingKey {
        case id, object, status, error, instructions, model, output, store, background, temperature, text, tools
        case truncation, usage, user, metadata
        case createdAt = "created_at"
        case incompleteDetails = "incomplete_details"
        case maxOutputTokens = "max_output_tokens"
        case parallelToolCalls = "parallel_tool_calls"
        case previousResponseID = "previous_response_id"
        case topP = "top_p"
        case toolChoice = "tool_choice"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.id = try c.decode(String.self, forKey: .id)
        self.object = try c.decode(String.self, forKey: .object)
        self.createdAt = try c.decode(Int.self, forKey: .createdAt)
        self.status = try c.decode(String.self, forKey: .status)
        self.error = try c.decodeIfPresent(Failure.self, forKey: .error)
        self.incompleteDetails = try c.decodeIfPresent(IncompleteDetails.self, forKey: .incompleteDetails)
        self.instructions = try c.decodeIfPresent(String.self, forKey: .instructions)
        self.maxOutputTokens = try c.decodeIfPresent(Int.self, forKey: .maxOutputTokens)
        self.model = try c.decode(String.self, forKey: .model)
        self.output = try c.decode([OutputItem].self, forKey: .output)
        self.parallelToolCalls = try c.decodeIfPresent(Bool.self, forKey: .parallelToolCalls) ?? false
        self.previousResponseID = try c.decodeIfPresent(String.self, forKey: .previousResponseID)
        self.store = try c.decodeIfPresent(Bool.self, forKey: .store) ?? false
        self.background = try c.decodeIfPresent(Bool.self, forKey: .background) ?? false
        self.temperature = try c.decodeIfPresent(Double.self, forKey: .temperature)
        self.topP = try c.decodeIfPresent(Double.self, forKey: .topP)
        self.usage = try c.decodeIfPresent(TokenUsage.self, forKey: .usage)
        self.user = try c.decodeIfPresent(String.self, forKey: .user)
        self.metadata = try c.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.id, forKey: .id)
        try c.encode(self.object, forKey: .object)
        try c.encode(self.createdAt, forKey: .createdAt)
        try c.encode(self.status, forKey: .status)
        try c.encode(self.error, forKey: .error)  // null, as OpenAI sends it
        try c.encode(self.incompleteDetails, forKey: .incompleteDetails)
        try c.encode(self.instructions, forKey: .instructions)
        try c.encode(self.maxOutputTokens, forKey: .maxOutputTokens)
        try c.encode(self.model, forKey: .model)
        try c.encode(self.output, forKey: .output)
        try c.encode(self.parallelToolCalls, forKey: .parallelToolCalls)
        try c.encode(self.previousResponseID, forKey: .previousResponseID)
        try c.encode(self.store, forKey: .store)
        try c.encode(self.background, forKey: .background)
        try c.encode(self.temperature, forKey: .temperature)
        try c.encode(self.topP, forKey: .topP)
        try c.encode(self.text, forKey: .text)
        try c.encode(self.toolChoice, forKey: .toolChoice)
        try c.encode(self.tools, forKey: .tools)
        try c.encode(self.truncation, forKey: .truncation)
        try c.encode(self.usage, forKey: .usage)
        try c.encode(self.user, forKey: .user)
        try c.encode(self.metadata, forKey: .metadata)
    }
}
