extension ResponsesRequest {
    /// The chat request a car serves for this Responses request, after refusing what is not served.
    ///
    /// `instructions` become a leading system message, `input` the messages (a string is one user
    /// message; `developer` is sent as `system`, the role every chat template knows),
    /// `max_output_tokens` becomes `max_tokens`; `model`, `temperature`, `top_p`, `stream`, `user`
    /// and `seed` carry over; `function` tools, `tool_choice` and the `function_call` and
    /// `function_call_output` input items take their chat forms (``chatTools()``). `metadata` stays at
    /// the gateway.
    ///
    /// - Returns: the chat request, as the client would have sent it to `/v1/chat/completions`.
    /// - Throws: an ``APIError`` 400 naming the parameter: a refused parameter, a non-text input
    ///   item or part, or a value out of range.
    public func chatRequest() throws(APIError) -> CompletionRequest {
        try self.refuseUnserved()
        if let limit = self.maxOutputTokens, limit < 1 || limit > 1 << 16 {
            throw .invalidRequest("'max_output_tokens' must be between 1 and 65536.", param: "max_output_tokens")
        }
        try APIError.checkRange("temperature", self.temperature, 0, 2)
        try APIError.checkRange("top_p", self.topP, 0, 1)
        if let metadata {
            guard metadata.count <= 16, metadata.allSatisfy({ $0.key.count <= 64 && $0.value.count <= 512 }) else {
                throw .invalidRequest(
                    "'metadata' takes at most 16 pairs, keys of at most 64 and values of at most 512 characters.",
                    param: "metadata")
            }
        }
        var messages: [ChatMessage] = []
        if let instructions { messages.append(ChatMessage(role: "system", content: instructions)) }
        switch self.input {
        case .text(let text):
            messages.append(ChatMessage(role: "user", content: text))
        case .items(let items):
            for (index, item) in items.enumerated() {
                // A `reasoning` item of an earlier answer, sent back with its output as the stateless
                // way to go on (helper-60: the gateway refused its own output). A chat template keeps
                // no earlier turn's thinking, so it is dropped, as OpenAI's models drop it.
                if case .object(let fields) = item, case .string("reasoning")? = fields["type"] { continue }
                if try Self.appendToolItem(item, param: "input[\(index)]", to: &messages) { continue }
                messages.append(try Self.message(item, param: "input[\(index)]"))
            }
            try Self.checkCallPairs(items)  // after each item's own shape was checked
        case nil:
            break
        }
        guard messages.contains(where: { $0.role != "system" }) else {
            throw .invalidRequest("'input' must hold at least one message.", param: "input")
        }
        var chat = CompletionRequest(
            model: self.model, messages: messages, stream: self.stream, maxTokens: self.maxOutputTokens,
            seed: self.seed)
        chat.temperature = self.temperature
        chat.topP = self.topP
        chat.user = self.user
        chat.responseFormat = try self.chatResponseFormat()
        chat.tools = try self.chatTools()
        chat.toolChoice = try self.chatToolChoice(hasTools: chat.tools != nil)
        return chat
    }

    /// Refuses, one by one, what would need stored state or tools that do not run on a car.
    private func refuseUnserved() throws(APIError) {
        if let tools = self.tools, case .array(let list) = tools {
            for (index, tool) in list.enumerated() {
                guard case .object(let fields) = tool, case .string(let type)? = fields["type"] else {
                    throw .invalidRequest("'tools[\(index)]' must be an object with a 'type'.", param: "tools")
                }
                if Self.builtInTools.contains(type) {
                    throw .invalidRequest(
                        "The built-in tool '\(type.prefix(40))' (tools[\(index)]) is not served: it would run outside the car, and outside the request's privacy zone. Send the request without it.",
                        param: "tools")
                }
                if type == "function" { continue }  // mapped by ``chatTools()``
                throw .invalidRequest(
                    "Tools of type '\(type.prefix(40))' (tools[\(index)]) are not served on /v1/responses; only 'function' tools are.",
                    param: "tools")
            }
        } else if let tools = self.tools, !tools.isEmptyOrNull {
            throw .invalidRequest("'tools' must be an array.", param: "tools")
        }
        // Log probabilities: a car's job carries none, and a silent empty list would read as an answer.
        if let top = self.topLogprobs, top > 0 {
            throw .invalidRequest(
                "'top_logprobs' is not served on /v1/responses: the fleet's answers carry no log probabilities. Use /v1/chat/completions with 'logprobs' (served by central capacity).",
                param: "top_logprobs")
        }
        if let include = self.include, include.contains("message.output_text.logprobs") {
            throw .invalidRequest(
                "'include' of 'message.output_text.logprobs' is not served on /v1/responses: the fleet's answers carry no log probabilities. Use /v1/chat/completions with 'logprobs' (served by central capacity).",
                param: "include")
        }
        if self.background == true {
            throw .invalidRequest(
                "'background' is not supported: a background response must be stored until it is fetched, and FleetGate stores no responses. Stream it instead.",
                param: "background")
        }
        if let previous = self.previousResponseID, !previous.isEmpty {
            throw .invalidRequest(
                "'previous_response_id' is not supported: FleetGate stores no responses. Send the earlier turns in 'input'.",
                param: "previous_response_id")
        }
        if self.store == true {
            throw .invalidRequest(
                "'store: true' is not supported: FleetGate stores no responses (stored state would have to stay inside the request's privacy zone). Send 'store: false' or leave it out.",
                param: "store")
        }
        if let conversation = self.conversation, !conversation.isEmptyOrNull {
            throw .invalidRequest(
                "'conversation' is not supported: FleetGate stores no conversations. Send the earlier turns in 'input'.",
                param: "conversation")
        }
        if let prompt = self.prompt, !prompt.isEmptyOrNull {
            throw .invalidRequest(
                "'prompt' (a stored prompt template) is not supported: send the text in 'instructions' and 'input'.",
                param: "prompt")
        }
    }

    /// `text.format` as chat's `response_format`: nil for `text`; `json_object` as it is; `json_schema`
    /// (`name` and `schema` required, `strict` and `description` carried) nested under `json_schema`,
    /// as chat writes it. Another type is a 400 naming `text.format`.
    func chatResponseFormat() throws(APIError) -> JSONValue? {
        guard case .object(let text)? = self.text, let format = text["format"], format != .null else { return nil }
        guard case .object(let fields) = format, case .string(let type)? = fields["type"] else {
            throw .invalidRequest("'text.format' must be an object with a 'type'.", param: "text.format")
        }
        switch type {
        case "text":
            return nil
        case "json_object":
            return .object(["type": .string("json_object")])
        case "json_schema":
            guard case .string(let name)? = fields["name"], !name.isEmpty else {
                throw .invalidRequest("Missing required parameter: 'text.format.name'.", param: "text.format.name")
            }
            guard case .object? = fields["schema"] else {
                throw .invalidRequest("Missing required parameter: 'text.format.schema'.", param: "text.format.schema")
            }
            var schema: [String: JSONValue] = ["name": .string(name)]
            for key in ["schema", "strict", "description"] {
                if let value = fields[key], value != .null { schema[key] = value }
            }
            return .object(["type": .string("json_schema"), "json_schema": .object(schema)])
        default:
            throw .invalidRequest(
                "'text.format' of type '\(type.prefix(40))' is not served on /v1/responses; 'text', 'json_object' and 'json_schema' are.",
                param: "text.format")
        }
    }

    /// One input item as a chat message: a message item (`type` `message` or absent) whose content
    /// is a string or text parts.
    private static func message(_ item: JSONValue, param: String) throws(APIError) -> ChatMessage {
        guard case .object(let fields) = item else {
            throw .invalidRequest("'\(param)' must be a message object.", param: param)
        }
        if case .string(let type)? = fields["type"], type != "message" {
            throw .invalidRequest(
                "Input items of type '\(type.prefix(40))' (\(param)) are not served on /v1/responses: only message items with text are.",
                param: param)
        }
        guard case .string(let role)? = fields["role"] else {
            throw .invalidRequest("'\(param).role' is required.", param: "\(param).role")
        }
        let chatRole: String
        switch role {
        case "user", "assistant", "system": chatRole = role
        case "developer": chatRole = "system"
        default:
            throw .invalidRequest(
                "'\(param).role' must be 'user', 'assistant', 'system' or 'developer'.", param: "\(param).role")
        }
        switch fields["content"] {
        case .string(let text):
            return ChatMessage(role: chatRole, content: text)
        case .array(let parts):
            var text = ""
            for (index, part) in parts.enumerated() {
                let partParam = "\(param).content[\(index)]"
                guard case .object(let part) = part, case .string(let type)? = part["type"] else {
                    throw .invalidRequest("'\(partParam)' must be a content part with a 'type'.", param: partParam)
                }
                switch (type, part["text"], part["refusal"]) {
                case ("input_text", .string(let value)?, _), ("output_text", .string(let value)?, _),
                    ("text", .string(let value)?, _), ("refusal", _, .string(let value)?):
                    text += value
                default:
                    throw .invalidRequest(
                        "Content parts of type '\(type.prefix(40))' (\(partParam)) are not served: the fleet's models take text only.",
                        param: partParam)
                }
            }
            return ChatMessage(role: chatRole, content: text)
        default:
            throw .invalidRequest(
                "'\(param).content' must be a string or an array of text parts.", param: "\(param).content")
        }
    }
}

extension ResponsesRequest {
    /// The `response` object this request starts as (`in_progress`, no output), echoing the
    /// parameters OpenAI echoes: `model`, `instructions`, `max_output_tokens`, `temperature`,
    /// `top_p`, `metadata`, `user`.
    ///
    /// - Parameters:
    ///   - id: the response id (`resp_…`).
    ///   - createdAt: seconds since 1970.
    public func responseTemplate(id: String, createdAt: Int) -> ResponseObject {
        var response = ResponseObject(id: id, createdAt: createdAt, model: self.model)
        response.instructions = self.instructions
        response.maxOutputTokens = self.maxOutputTokens
        // The values in effect, as OpenAI echoes them: 1 when the request left them out (helper-60).
        response.temperature = self.temperature ?? 1
        response.topP = self.topP ?? 1
        response.metadata = self.metadata ?? [:]
        response.user = self.user
        if case .array(let tools)? = self.tools { response.tools = tools }
        if let choice = self.toolChoice, !choice.isEmptyOrNull { response.toolChoice = choice }
        response.parallelToolCalls = self.parallelToolCalls ?? true
        if case .object(let text)? = self.text, case .object? = text["format"] { response.text = .object(text) }
        return response
    }
}
