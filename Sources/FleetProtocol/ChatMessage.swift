/// One chat message.
public struct ChatMessage: Codable, Sendable, Hashable {
    public var role: String
    public var content: String
    /// A reasoning model's thinking in an answer (`reasoning_content`, as llama.cpp, vLLM and
    /// DeepSeek write it); nil when it had none. Not read from a request's messages.
    public var reasoningContent: String?
    /// The model's refusal in an answer (OpenAI's `message.refusal`); nil when it did not decline.
    /// Not read from a request's messages (an assistant's refusal part is read as its text).
    public var refusal: String?
    /// The functions the model called, in an answer (`message.tool_calls`); nil when it called none.
    /// Not read from a request's messages, which reach the upstream as the client wrote them.
    public var toolCalls: [ToolCall]?
    /// The call a `tool` message answers (`tool_call_id`): written for the chat request a Responses
    /// request maps onto; not read from a request's messages.
    public var toolCallID: String?

    public init(
        role: String, content: String, reasoningContent: String? = nil, refusal: String? = nil,
        toolCalls: [ToolCall]? = nil, toolCallID: String? = nil
    ) {
        self.toolCallID = toolCallID
        self.role = role
        self.content = content
        self.reasoningContent = reasoningContent
        self.refusal = refusal
        self.toolCalls = toolCalls
    }

    /// As OpenAI writes an answer's message: `content` null when the model only called tools.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(self.role, forKey: .role)
        if self.content.isEmpty && !(self.toolCalls ?? []).isEmpty {
            try c.encodeNil(forKey: .content)
        } else {
            try c.encode(self.content, forKey: .content)
        }
        try c.encodeIfPresent(self.reasoningContent, forKey: .reasoningContent)
        try c.encodeIfPresent(self.refusal, forKey: .refusal)
        try c.encodeIfPresent(self.toolCalls, forKey: .toolCalls)
        try c.encodeIfPresent(self.toolCallID, forKey: .toolCallID)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.role = try c.decode(String.self, forKey: .role)
        // content may be a string or an array of {type:"text", text:…} parts; an assistant message may
        // leave it out (OpenAI: optional beside `tool_calls`; SDKs dumping a tool-calling answer with
        // `exclude_none` do — helper-71: every second turn of a tool loop was a 400).
        if self.role == "assistant" && !c.contains(.content) {
            self.content = ""
        } else if let text = try? c.decode(String.self, forKey: .content) {
            self.content = text
        } else if let parts = try? c.decode([ContentPart].self, forKey: .content) {
            // An image or audio part dropped in silence would be answered as if it were not there.
            if let index = parts.firstIndex(where: { $0.text == nil }) {
                throw InvalidRequestField(
                    at: decoder.codingPath + [CodingKeys.content, Index(index)],
                    "Content parts of type '\(parts[index].type.prefix(40))' ({param}) are not served: the fleet's models take text only."
                )
            }
            self.content = parts.compactMap(\.text).joined()
        } else if try c.decodeNil(forKey: .content) {
            // OpenAI's types: null only where a turn may hold no text (an assistant's tool calls, a
            // legacy function's result); a user's null was served as an empty prompt (helper-127).
            guard self.role == "assistant" || self.role == "function" else {
                throw InvalidRequestField(
                    at: decoder.codingPath + [CodingKeys.content],
                    "Invalid type for '{param}': expected a string or an array of text parts, but got null instead.")
            }
            self.content = ""
        } else {
            throw DecodingError.dataCorruptedError(
                forKey: .content, in: c, debugDescription: "content must be a string or an array of text parts")
        }
        // An earlier turn's function calling, which the validator checks as OpenAI does.
        self.toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls)
        self.toolCallID = try c.decodeIfPresent(String.self, forKey: .toolCallID)
    }

    /// A text part (`text`), or an assistant's `refusal`; any other type has no text.
    private struct ContentPart: Decodable, Sendable {
        var type: String
        var text: String?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            self.type = try c.decode(String.self, forKey: .type)
            switch self.type {
            case "text": self.text = try c.decode(String.self, forKey: .text)
            case "refusal": self.text = try c.decode(String.self, forKey: .refusal)
            default: self.text = nil
            }
        }

        private enum Keys: String, CodingKey { case type, text, refusal }
    }

    /// An array index in a coding path.
    private struct Index: CodingKey {
        var intValue: Int?
        var stringValue: String { "Index \(self.intValue ?? 0)" }
        init(_ index: Int) { self.intValue = index }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.intValue = intValue }
    }

    private enum CodingKeys: String, CodingKey {
        case role, content, refusal
        case reasoningContent = "reasoning_content"
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
    }
}
