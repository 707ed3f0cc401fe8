/// OpenAI wire types: the subset of `/v1/chat/completions` and `/v1/completions` the fleet serves.
///
/// Decoding is lenient about fields we do not use (they are ignored) and strict about the ones
/// we do: wrong types are a 400, as OpenAI's API answers them.

/// `stream_options`.
public struct StreamOptions: Codable, Sendable, Hashable {
    public var includeUsage: Bool?
    public init(includeUsage: Bool?) { self.includeUsage = includeUsage }
    enum CodingKeys: String, CodingKey { case includeUsage = "include_usage" }
}

/// `stop`: a string or an array of strings.
public struct StopSequences: Codable, Sendable, Hashable {
    public var values: [String]
    public init(_ values: [String]) { self.values = values }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let one = try? c.decode(String.self) {
            self.values = [one]
        } else {
            self.values = try c.decode([String].self)
        }
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(self.values)
    }
}

/// The body of `POST /v1/chat/completions` or `POST /v1/completions` (then `prompt` instead of `messages`).
public struct CompletionRequest: Codable, Sendable, Equatable, IntegerMembers {
    public static let integerMembers = ["max_tokens", "max_completion_tokens", "seed", "n", "top_logprobs"]

    public var model: String
    public var messages: [ChatMessage]?
    public var prompt: String?
    public var stream: Bool?
    public var streamOptions: StreamOptions?
    public var maxTokens: Int?
    public var maxCompletionTokens: Int?
    public var temperature: Double?
    public var stop: StopSequences?
    public var seed: Int?
    public var user: String?
    /// Choices to generate; a gateway cannot continue more than one on another upstream.
    public var n: Int?
    public var topP: Double?
    public var presencePenalty: Double?
    public var frequencyPenalty: Double?
    /// Chat: a boolean; legacy completions: a count. Either way, "logprobs were asked for".
    public var logprobs: JSONValue?
    public var topLogprobs: Int?
    public var tools: JSONValue?
    public var toolChoice: JSONValue?
    public var responseFormat: JSONValue?

    public init(
        model: String, messages: [ChatMessage]? = nil, prompt: String? = nil, stream: Bool? = nil,
        streamOptions: StreamOptions? = nil, maxTokens: Int? = nil, stop: [String]? = nil, seed: Int? = nil
    ) {
        self.model = model
        self.messages = messages
        self.prompt = prompt
        self.stream = stream
        self.streamOptions = streamOptions
        self.maxTokens = maxTokens
        self.stop = stop.map(StopSequences.init)
        self.seed = seed
    }

    enum CodingKeys: String, CodingKey {
        case model, messages, prompt, stream, temperature, stop, seed, user, n, logprobs, tools
        case topP = "top_p"
        case presencePenalty = "presence_penalty"
        case frequencyPenalty = "frequency_penalty"
        case topLogprobs = "top_logprobs"
        case toolChoice = "tool_choice"
        case responseFormat = "response_format"
        case streamOptions = "stream_options"
        case maxTokens = "max_tokens"
        case maxCompletionTokens = "max_completion_tokens"
    }

    /// Whether the request's state can be carried to another upstream mid-stream: not with several
    /// choices, tools (a call may be half written), schema-bound output or logprobs.
    public var isContinuable: Bool {
        if let n, n > 1 { return false }
        if let tools, !tools.isEmptyOrNull { return false }
        if let format = self.responseFormat, case .object(let fields) = format,
            case .string(let type)? = fields["type"], type != "text"
        {
            return false
        }
        if self.wantsLogprobs { return false }
        return true
    }

    /// Whether the answer is to carry log probabilities: the car path relays text only. For chat,
    /// `logprobs: true` (a boolean there; other values are false to OpenAI-compatible servers); for a
    /// legacy completion any count — 0 still asks for the sampled tokens' — or `true`.
    public var wantsLogprobs: Bool {
        switch self.logprobs {
        case .bool(true)?: true
        case .number?: self.messages == nil
        default: false
        }
    }

    /// The output limit: `max_completion_tokens`, else `max_tokens`.
    public var outputLimit: Int? { self.maxCompletionTokens ?? self.maxTokens }

    /// The output a request is planned for: its limit, else OpenAI's default for a legacy completion
    /// (16: a car stops there, as OpenAI, vLLM and llama-cpp-python do; helper-122), else 256 for a chat
    /// answer, which has no default limit. The gateway's estimate and the agent's job read it.
    public var plannedOutputLimit: Int { self.outputLimit ?? (self.messages == nil ? 16 : 256) }

    /// The output a model's context window must hold for this request besides its prompt: its limit,
    /// or a legacy completion's default 16; none for a chat answer without a limit (a runtime stops it
    /// at the window). Synthetic cars refuse by it; the gateway routes by it.
    public var windowOutputTokens: Int { self.outputLimit ?? (self.messages == nil ? 16 : 0) }

    /// The prompt as a ``Prompt`` (whose description never shows text).
    public var promptText: Prompt {
        if let messages { return Prompt(messages.map { "\($0.role): \($0.content)" }.joined(separator: "\n")) }
        return Prompt(self.prompt ?? "")
    }
}

/// Prompt or completion text: its description shows only its size, so it cannot reach a log by accident.
public struct Prompt: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The text. Never log it.
    public let text: String
    public init(_ text: String) { self.text = text }
    /// Rough token estimate (≈ 4 bytes per token, OpenAI's rule of thumb).
    public var estimatedTokens: Int { max(1, self.text.utf8.count / 4) }
    public var description: String { "Prompt(\(self.text.utf8.count) bytes, ~\(self.estimatedTokens) tokens)" }
    public var debugDescription: String { self.description }
}

/// Token counts.
public struct Usage: Codable, Sendable, Hashable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int
    /// The cached prompt tokens and reasoning tokens (`prompt_tokens_details.cached_tokens`,
    /// `completion_tokens_details.reasoning_tokens`), when the upstream that answered said them.
    public var details: UsageDetails?

    public init(promptTokens: Int, completionTokens: Int, details: UsageDetails? = nil) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        // Saturating: counts come from upstreams (bounded by the scanners, but this is the last line).
        let (total, overflow) = promptTokens.addingReportingOverflow(completionTokens)
        self.totalTokens = overflow ? Int.max : total
        self.details = details
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.promptTokens = try c.decode(Int.self, forKey: .promptTokens)
        self.completionTokens = try c.decode(Int.self, forKey: .completionTokens)
        self.totalTokens = try c.decode(Int.self, forKey: .totalTokens)
        if c.contains(.promptTokensDetails) || c.contains(.completionTokensDetails) {
            self.details = (try? UsageDetails.Counts(from: decoder)).map(UsageDetails.init)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.promptTokens, forKey: .promptTokens)
        try c.encode(self.completionTokens, forKey: .completionTokens)
        try c.encode(self.totalTokens, forKey: .totalTokens)
        guard let details = self.details else { return }
        typealias DetailKeys = UsageDetails.Counts.DetailKeys
        var prompt = c.nestedContainer(keyedBy: DetailKeys.self, forKey: .promptTokensDetails)
        try prompt.encode(details.cachedTokens, forKey: .cachedTokens)
        var completion = c.nestedContainer(keyedBy: DetailKeys.self, forKey: .completionTokensDetails)
        try completion.encode(details.reasoningTokens, forKey: .reasoningTokens)
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
        case promptTokensDetails = "prompt_tokens_details"
        case completionTokensDetails = "completion_tokens_details"
    }
}

/// A delta in a streamed chat chunk.
public struct ChunkDelta: Codable, Sendable, Hashable {
    public var role: String?
    public var content: String?
    public init(role: String? = nil, content: String? = nil) {
        self.role = role
        self.content = content
    }
}

/// One choice of a streamed chunk (`chat.completion.chunk` or `text_completion`).
public struct ChunkChoice: Codable, Sendable, Hashable {
    public var index: Int
    public var delta: ChunkDelta?
    public var text: String?
    public var finishReason: String?

    public init(index: Int = 0, delta: ChunkDelta? = nil, text: String? = nil, finishReason: String? = nil) {
        self.index = index
        self.delta = delta
        self.text = text
        self.finishReason = finishReason
    }

    enum CodingKeys: String, CodingKey {
        case index, delta, text
        case finishReason = "finish_reason"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.index, forKey: .index)
        try c.encodeIfPresent(self.delta, forKey: .delta)
        try c.encodeIfPresent(self.text, forKey: .text)
        try c.encode(self.finishReason, forKey: .finishReason)  // OpenAI sends null explicitly
    }
}

/// A streamed chunk.
public struct CompletionChunk: Codable, Sendable, Hashable {
    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [ChunkChoice]
    public var usage: Usage?

    public init(id: String, object: String, created: Int, model: String, choices: [ChunkChoice], usage: Usage? = nil) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}

/// A non-streamed completion (`chat.completion` or `text_completion`).
public struct CompletionResponse: Codable, Sendable, Hashable {
    public struct Choice: Codable, Sendable, Hashable {
        public var index: Int
        public var message: ChatMessage?
        public var text: String?
        public var finishReason: String?

        public init(index: Int, message: ChatMessage?, text: String?, finishReason: String?) {
            self.index = index
            self.message = message
            self.text = text
            self.finishReason = finishReason
        }

        enum CodingKeys: String, CodingKey {
            case index, message, text
            case finishReason = "finish_reason"
        }
    }

    public var id: String
    public var object: String
    public var created: Int
    public var model: String
    public var choices: [Choice]
    public var usage: Usage

    public init(id: String, object: String, created: Int, model: String, choices: [Choice], usage: Usage) {
        self.id = id
        self.object = object
        self.created = created
        self.model = model
        self.choices = choices
        self.usage = usage
    }
}

/// `GET /v1/models`.
public struct ModelList: Codable, Sendable, Hashable {
    public struct Model: Codable, Sendable, Hashable {
        public var id: String
        public var object: String = "model"
        public var created: Int
        public var ownedBy: String

        public init(id: String, created: Int, ownedBy: String) {
            self.id = id
            self.created = created
            self.ownedBy = ownedBy
        }

        enum CodingKeys: String, CodingKey {
            case id, object, created
            case ownedBy = "owned_by"
        }

        /// Only `id` is required: llama-cpp-python's server, for one, sends no `created`.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            self.id = try container.decode(String.self, forKey: .id)
            self.object = try container.decodeIfPresent(String.self, forKey: .object) ?? "model"
            self.created = try container.decodeIfPresent(Int.self, forKey: .created) ?? 0
            self.ownedBy = try container.decodeIfPresent(String.self, forKey: .ownedBy) ?? ""
        }
    }

    public var object: String = "list"
    public var data: [Model]
    public init(data: [Model]) { self.data = data }
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
public struct APIErrorBody: Codable, Sendable, Hashable {
    public struct Detail: Codable, Sendable, Hashable {
        public var message: String
        public var type: String
        public var param: String?
        public var code: String?

        /// `param` and `code` are always written, `null` when absent, as OpenAI writes them.
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(self.message, forKey: .message)
            try c.encode(self.type, forKey: .type)
            try c.encode(self.param, forKey: .param)
            try c.encode(self.code, forKey: .code)
        }

        private enum CodingKeys: String, CodingKey { case message, type, param, code }
    }

    public var error: Detail
    /// The car protocol's error event only (docs/protocol.md): the status of a rejection of the
    /// request itself by the car's runtime. Never sent to an app.
    public var fleetStatus: Int?

    public init(message: String, type: String, code: String?, param: String? = nil) {
        self.error = Detail(message: message, type: type, param: param, code: code)
    }

    private enum CodingKeys: String, CodingKey {
        case error
        case fleetStatus = "fleet_status"
    }
}
