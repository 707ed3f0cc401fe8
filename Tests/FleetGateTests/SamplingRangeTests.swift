import FleetProtocol
import HTTPTypes
import NIOCore
import Testing

@testable import FleetGate

@Suite("Sampling parameters and roles in OpenAI's ranges")
struct SamplingRangeTests {
    private func check(_ edit: (inout CompletionRequest) -> Void) -> APIError? {
        var request = CompletionRequest(model: "m", messages: [ChatMessage(role: "user", content: "hi")])
        edit(&request)
        do throws(APIError) {
            try RequestValidator.checkSampling(request)
            return nil
        } catch {
            return error
        }
    }

    /// The validator's answer to `members` in a chat (or legacy completion) body, as the client API reads it.
    private static func refusal(_ core: GatewayCore, _ members: String, chat: Bool) -> APIError? {
        let text = chat ? #""messages":[{"role":"user","content":"hi"}]"# : #""prompt":"hi""#
        let body = ByteBuffer(string: #"{"model":"m",\#(text),\#(members)}"#)
        let path = chat ? "/v1/chat/completions" : "/v1/completions"
        let head = HTTPRequest(method: .post, scheme: "http", authority: "gw", path: path)
        guard case .failure(let error)? = core.validateRequest(path: path, head: head, peer: nil, body: body)
        else { return nil }
        return error
    }

    @Test("The bounds themselves pass")
    func bounds() {
        #expect(self.check { $0.temperature = 0 } == nil)
        #expect(self.check { $0.temperature = 2 } == nil)
        #expect(self.check { $0.topP = 1 } == nil)
        #expect(self.check { $0.presencePenalty = -2 } == nil)
        #expect(self.check { $0.frequencyPenalty = 2 } == nil)
        #expect(
            self.check {
                $0.logprobs = .bool(true)
                $0.topLogprobs = 20
            } == nil)
        #expect(
            self.check {
                $0.messages = ["system", "developer", "assistant", "function"].map {
                    ChatMessage(role: $0, content: "")
                }
                $0.messages![2].toolCalls = [ToolCall(id: "c1", function: .init(name: "f", arguments: "{}"))]
                $0.messages!.insert(ChatMessage(role: "tool", content: "42", toolCallID: "c1"), at: 3)
            } == nil)
    }

    @Test("Function calling turns are checked as OpenAI checks them (helper-69: they were forwarded)")
    func toolTurns() {
        func call(_ id: String) -> ToolCall { ToolCall(id: id, function: .init(name: "f", arguments: "{}")) }
        func calls(_ ids: String...) -> ChatMessage {
            ChatMessage(role: "assistant", content: "", toolCalls: ids.map(call))
        }
        func output(_ id: String?) -> ChatMessage { ChatMessage(role: "tool", content: "ok", toolCallID: id) }
        let user = ChatMessage(role: "user", content: "hi")
        // Two turns, two calls in the first answered in either order: served.
        #expect(
            self.check {
                $0.messages = [user, calls("a", "b"), output("b"), output("a"), user, calls("c"), output("c")]
            }
                == nil)
        // A tool message without an id, answering nothing, or answering a call twice.
        #expect(self.check { $0.messages = [user, calls("a"), output(nil)] }?.param == "messages[2].tool_call_id")
        #expect(self.check { $0.messages = [user, output("a")] }?.param == "messages[1].role")
        #expect(self.check { $0.messages = [user, calls("a"), output("a"), output("a")] }?.param == "messages[3].role")
        // A call left unanswered: before the next message, or at the end.
        let unanswered = self.check { $0.messages = [user, calls("a", "b"), output("a"), user] }
        #expect(unanswered?.param == "messages")
        #expect(
            unanswered?.message.contains("did not have response messages: b") == true,
            "\(String(describing: unanswered))")
        #expect(self.check { $0.messages = [user, calls("a")] }?.param == "messages")
        // A call without its id or its function's name (helper-96: `tool_calls: [{}]` was passed on).
        let bare = ChatMessage(role: "assistant", content: "", toolCalls: [ToolCall(id: nil, function: nil)])
        #expect(self.check { $0.messages = [user, bare] }?.param == "messages[1].tool_calls[0].id")
        let nameless = ChatMessage(role: "assistant", content: "", toolCalls: [ToolCall(id: "a", function: nil)])
        #expect(self.check { $0.messages = [user, nameless] }?.param == "messages[1].tool_calls[0].function.name")
        let custom = ChatMessage(
            role: "assistant", content: "", toolCalls: [ToolCall(id: "a", type: "custom", function: nil)])
        #expect(self.check { $0.messages = [user, custom, output("a")] } == nil)
        // A tool choice naming a function that is not among the tools.
        let tools = JSONValue.array([
            .object(["type": .string("function"), "function": .object(["name": .string("weather")])])
        ])
        func named(_ name: String) -> JSONValue {
            .object(["type": .string("function"), "function": .object(["name": .string(name)])])
        }
        #expect(
            self.check {
                $0.tools = tools; $0.toolChoice = named("weather")
            } == nil)
        #expect(
            self.check {
                $0.tools = tools; $0.toolChoice = named("time")
            }?.param == "tool_choice")
    }

    @Test("response_format and tools have OpenAI's shapes (helper-72: malformed ones were 200s passed on)")
    func shapes() {
        func format(_ value: JSONValue) -> String? { self.check { $0.responseFormat = value }?.param }
        #expect(format(.object(["type": .string("json_object")])) == nil)
        #expect(format(.object(["type": .string("text")])) == nil)
        #expect(
            format(
                .object([
                    "type": .string("json_schema"),
                    "json_schema": .object(["name": .string("x"), "schema": .object(["type": .string("object")])]),
                ])) == nil)
        #expect(format(.string("json")) == "response_format")
        #expect(format(.object(["type": .string("json")])) == "response_format.type")
        #expect(format(.object(["type": .string("json_schema")])) == "response_format.json_schema")
        #expect(
            format(.object(["type": .string("json_schema"), "json_schema": .object(["schema": .object([:])])]))
                == "response_format.json_schema.name")
        #expect(
            format(
                .object([
                    "type": .string("json_schema"),
                    "json_schema": .object(["name": .string("x"), "schema": .string("{}")]),
                ])) == "response_format.json_schema.schema")

        func tools(_ value: JSONValue) -> String? { self.check { $0.tools = value }?.param }
        func function(_ fields: [String: JSONValue]) -> JSONValue {
            .array([.object(["type": .string("function"), "function": .object(fields)])])
        }
        #expect(tools(function(["name": .string("f"), "parameters": .object([:])])) == nil)
        #expect(
            tools(function(["name": .string("f"), "parameters": .string("notobj")])) == "tools[0].function.parameters")
        #expect(tools(function(["parameters": .object([:])])) == "tools[0].function.name")
        #expect(tools(.array([.string("f")])) == "tools[0]")
        #expect(tools(.object([:])) == "tools")
        #expect(tools(.array([.object(["type": .string("custom"), "custom": .object([:])])])) == nil)
        // A tool without a type (helper-96: `tools: [{}]` was passed on).
        #expect(tools(.array([.object([:])])) == "tools[0].type")
        #expect(tools(.array([.object(["type": .string("")])])) == "tools[0].type")
    }

    @Test("A tool choice needs tools, as OpenAI says; at most 4 stop sequences")
    func toolChoiceNeedsTools() {
        #expect(self.check { $0.stop = StopSequences(["a", "b", "c", "d"]) } == nil)
        #expect(self.check { $0.stop = StopSequences(["a", "b", "c", "d", "e"]) }?.param == "stop")
        #expect(self.check { $0.toolChoice = .string("required") }?.param == "tool_choice")
        #expect(
            self.check {
                $0.toolChoice = .string("auto"); $0.tools = .array([])
            }?.param == "tool_choice")
        #expect(self.check { $0.toolChoice = .null } == nil)
        #expect(
            self.check {
                $0.toolChoice = .string("auto")
                $0.tools = .array([
                    .object(["type": .string("function"), "function": .object(["name": .string("f")])])
                ])
            } == nil)
    }

    @Test("A web search and audio are read apart, only from bodies that name them (helper-64)")
    func webSearchAndAudio() throws {
        func extras(_ json: String) -> RequestExtras? { RequestExtras.of(ByteBuffer(string: json)) }
        #expect(extras(#"{"model":"m","messages":[]}"#) == nil)  // no decode for most bodies
        #expect(extras(#"{"model":"m","web_search_options":{}}"#)?.wantsWebSearch == true)
        #expect(extras(#"{"model":"m","web_search_options":null}"#)?.wantsWebSearch == false)
        let spoken = extras(#"{"model":"m","modalities":["text","audio"],"audio":{"voice":"alloy","format":"wav"}}"#)
        #expect(spoken?.wantsAudio == true && spoken?.audioParam == "audio")
        #expect(extras(#"{"model":"m","modalities":["audio"]}"#)?.audioParam == "modalities")
        // `"audio"` in a message's text is no request for it.
        #expect(
            extras(#"{"model":"m","modalities":["text"],"messages":[{"role":"user","content":"\"audio\""}]}"#)?
                .wantsAudio != true)
        #expect(
            extras(#"{"model":"m","messages":[{"role":"user","content":"say","name":"audio"}]}"#)?.wantsAudio == false)
        // A name written with escapes is the same name to an upstream (helper-66: it got past the 400).
        #expect(extras(#"{"model":"m","web_search_opt\u0069ons":{}}"#)?.wantsWebSearch == true)
        #expect(extras(#"{"model":"m","modalities":["text","\u0061udio"]}"#)?.wantsAudio == true)
    }

    @Test("Past a bound: a 400 naming the parameter")
    func outside() {
        #expect(self.check { $0.temperature = 5 }?.param == "temperature")
        #expect(self.check { $0.temperature = -0.1 }?.message == "'temperature' must be between 0 and 2.")
        #expect(self.check { $0.topP = 1.5 }?.param == "top_p")
        #expect(self.check { $0.presencePenalty = -2.5 }?.param == "presence_penalty")
        #expect(self.check { $0.frequencyPenalty = 3 }?.param == "frequency_penalty")
        #expect(self.check { $0.topLogprobs = 21 }?.param == "top_logprobs")
        #expect(
            self.check { $0.messages?.append(ChatMessage(role: "wizard", content: "")) }?.param == "messages[1].role")
    }

    @Test("A user's null content is the 400 of OpenAI's types on the validator's every path")
    func nullUserContent() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        func validate(_ messages: String) -> Result<GatewayCore.AcceptedRequest, APIError>? {
            let body = ByteBuffer(string: #"{"model":"m","max_tokens":4,"messages":\#(messages)}"#)
            let path = "/v1/chat/completions"
            let head = HTTPRequest(method: .post, scheme: "http", authority: "gw", path: path)
            return core.validateRequest(path: path, head: head, peer: nil, body: body)
        }
        guard case .failure(let error)? = validate(#"[{"role":"user","content":null}]"#) else {
            Issue.record("a user's null content was served")
            return
        }
        #expect(error.param == "messages[0].content")
        let answer =
            #"[{"role":"user","content":"hi"},{"role":"assistant","content":null},{"role":"user","content":"go on"}]"#
        guard case .success? = validate(answer) else {
            Issue.record("an assistant's null content was refused")
            return
        }
    }

    @Test("logprobs, metadata and logit_bias have OpenAI's types (helper-96: `\"x\"`, `5` and `5` were passed on)")
    func typedExtras() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        func refusal(_ members: String, chat: Bool = true) -> APIError? { Self.refusal(core, members, chat: chat) }
        // What OpenAI takes passes (logprobs then need central capacity, which this core has none of).
        for members in [
            #""logprobs":null"#, #""logprobs":false"#, #""metadata":{"team":"a","run":"7"}"#, #""metadata":null"#,
            #""metadata":{}"#, #""logit_bias":{"50256":-100,"13":2.5}"#, #""logit_bias":null"#,
        ] {
            #expect(refusal(members) == nil, "\(members)")
        }
        let centralOnly = "'logprobs' is served only by central capacity, and zone 'eu' has none configured."
        #expect(refusal(#""logprobs":true,"top_logprobs":3"#)?.message == centralOnly)
        #expect(refusal(#""logprobs":3"#, chat: false)?.message == centralOnly)
        #expect(refusal(#""logprobs":0"#, chat: false)?.message == centralOnly)
        // What OpenAI refuses is a 400 naming the member.
        #expect(
            refusal(#""logprobs":"x""#)?.message
                == "Invalid type for 'logprobs': expected a boolean, but got a string instead.")
        #expect(refusal(#""logprobs":1"#)?.param == "logprobs")
        // Alternatives without the log probabilities themselves (OpenAI's rule); 0 asks for none.
        #expect(refusal(#""top_logprobs":3"#)?.message == "'top_logprobs' needs 'logprobs' set to true.")
        #expect(refusal(#""logprobs":false,"top_logprobs":1"#)?.param == "top_logprobs")
        #expect(refusal(#""logprobs":false,"top_logprobs":0"#) == nil)
        #expect(refusal(#""logprobs":6"#, chat: false)?.param == "logprobs")
        #expect(refusal(#""logprobs":1.5"#, chat: false)?.param == "logprobs")
        #expect(refusal(#""logprobs":"3""#, chat: false)?.param == "logprobs")
        #expect(
            refusal(#""metadata":5"#)?.message
                == "Invalid type for 'metadata': expected an object, but got a number instead.")
        #expect(refusal(#""metadata":{"a":1}"#)?.param == "metadata.a")
        #expect(refusal(#""metadata":{"a":"\#(String(repeating: "v", count: 513))"}"#)?.param == "metadata.a")
        #expect(refusal(#""metadata":{"\#(String(repeating: "k", count: 65))":"v"}"#)?.param == "metadata")
        let seventeen = (1...17).map { #""k\#($0)":"v""# }.joined(separator: ",")
        #expect(refusal(#""metadata":{\#(seventeen)}"#)?.param == "metadata")
        #expect(refusal(#""logit_bias":5"#)?.param == "logit_bias")
        #expect(refusal(#""logit_bias":{"the":5}"#)?.param == "logit_bias")
        #expect(refusal(#""logit_bias":{"-1":5}"#)?.param == "logit_bias")
        #expect(
            refusal(#""logit_bias":{"13":1000000}"#)?.message
                == "'logit_bias.13' must be a number between -100 and 100.")
        #expect(refusal(#""logit_bias":{"13":"5"}"#)?.param == "logit_bias.13")
        // Written with an escape, the name is the same to an upstream.
        #expect(refusal(#""met\u0061data":5"#)?.param == "metadata")
        #expect(refusal(#""metadata":5"#)?.status == 400)
    }

    @Test("A legacy completion's echo, suffix and best_of need central capacity; other types are refused (helper-122)")
    func legacyParameters() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        func refusal(_ members: String, chat: Bool = false) -> APIError? { Self.refusal(core, members, chat: chat) }
        // What a car serves as asked.
        for members in [
            #""echo":false"#, #""echo":null"#, #""suffix":null"#, #""suffix":"""#, #""best_of":1"#, #""best_of":1.0"#,
            #""best_of":1e0"#, #""echo" : false"#,
        ] {
            #expect(refusal(members) == nil, "\(members)")
        }
        // What only central can (this core has none for the zone): a 400 naming it, not a silent answer.
        for (members, param) in [
            (#""echo":true"#, "echo"), (#""suffix":" the end""#, "suffix"), (#""best_of":3"#, "best_of"),
            (#""best_of":3,"echo":true"#, "echo"), (#""best_of":2.0"#, "best_of"), (#""echo" : true"#, "echo"),
        ] {
            #expect(
                refusal(members)?.message
                    == "'\(param)' is served only by central capacity, and zone 'eu' has none configured.",
                "\(members)")
        }
        // OpenAI's types and range.
        #expect(refusal(#""echo":"yes""#)?.param == "echo")
        #expect(refusal(#""suffix":5"#)?.param == "suffix")
        #expect(refusal(#""best_of":21"#)?.param == "best_of")
        #expect(refusal(#""best_of":1.5"#)?.param == "best_of")
        // Not a chat parameter: a chat body's are not read.
        #expect(refusal(#""echo":true"#, chat: true) == nil)
    }

    @Test("max_tokens and max_completion_tokens together are refused as OpenAI refuses them (note 44)")
    func bothOutputLimits() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        for chat in [true, false] {
            let both = Self.refusal(core, #""max_tokens":5,"max_completion_tokens":5"#, chat: chat)
            #expect(
                both?.code == "invalid_parameter_combination" && both?.param == "max_tokens",
                "\(String(describing: both))")
            #expect(
                both?.message == "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.")
            #expect(Self.refusal(core, #""max_completion_tokens":5"#, chat: chat) == nil)
            #expect(Self.refusal(core, #""max_tokens":5"#, chat: chat) == nil)
        }
    }

    @Test(
        "OpenAI's 400s for parameters that were ignored: parallel_tool_calls alone, tools of another API, functions (helper-127)"
    )
    func ignoredParameters() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        let tool = #""tools":[{"type":"function","function":{"name":"f"}}]"#
        // `stream_options` on an answer that is not streamed stays accepted (and left out of central's
        // body): OpenAI refuses it, but clients that always send it were served before (CentralTests).
        for chat in [true, false] {
            #expect(Self.refusal(core, #""stream":false,"stream_options":{"include_usage":true}"#, chat: chat) == nil)
        }
        let parallel = Self.refusal(core, #""parallel_tool_calls":false"#, chat: true)
        #expect(parallel?.param == "parallel_tool_calls", "\(String(describing: parallel))")
        #expect(Self.refusal(core, #""parallel_tool_calls":false,\#(tool)"#, chat: true) == nil)
        #expect(Self.refusal(core, #""parallel_tool_calls":null"#, chat: true) == nil)
        for member in [#""functions":[{"name":"f","parameters":{}}]"#, #""function_call":"auto""#] {
            let refused = Self.refusal(core, member, chat: true)
            #expect(refused?.param == (member.contains("functions") ? "functions" : "function_call"))
            #expect(refused?.message.contains("'tools'") == true, "\(String(describing: refused))")
        }
        #expect(Self.refusal(core, #""functions":null"#, chat: true) == nil)
        let interpreter = Self.refusal(core, #""tools":[{"type":"code_interpreter"}]"#, chat: true)
        #expect(interpreter?.param == "tools[0].type", "\(String(describing: interpreter))")
        #expect(
            interpreter?.message == "Invalid value: 'code_interpreter'. Supported values are: 'function' and 'custom'.")
        #expect(Self.refusal(core, #""tools":[{"type":"custom","custom":{"name":"c"}}]"#, chat: true) == nil)
        // The decoder's path (a body the fast reader gives up on: an escaped value) checks the same.
        #expect(Self.refusal(core, #""user":"\u0041","functions":[]"#, chat: true)?.param == "functions")
    }

    @Test("A number past a Double in logit_bias or metadata is refused, on either reader's path (helper-128)")
    func unrepresentableExtras() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        // The fast reader's path, and the decoder's (a body asking for audio, which the fast reader leaves).
        for extra in ["", #""modalities":["text"],"#] {
            let bias = Self.refusal(core, extra + #""logit_bias":{"1":1e999}"#, chat: true)
            #expect(bias?.param == "logit_bias", "\(extra): \(String(describing: bias))")
            let metadata = Self.refusal(core, extra + #""metadata":{"k":-1e400}"#, chat: true)
            #expect(metadata?.param == "metadata", "\(extra): \(String(describing: metadata))")
            #expect(Self.refusal(core, extra + #""logit_bias":{"1":1e2}"#, chat: true) == nil, "\(extra)")
        }
        // Web search is still refused when another extra does not decode.
        let search = Self.refusal(core, #""web_search_options":{},"logit_bias":{"1":1e999}"#, chat: true)
        #expect(search != nil, "\(String(describing: search))")
    }

    @Test("An empty model is OpenAI's 400 naming it; a body that is not an object names no parameter (helper-127)")
    func emptyModelAndNonObject() throws {
        let core = try GatewayCore.detached(models: ["m"], fleetSecret: String(repeating: "s", count: 32))
        let head = HTTPRequest(method: .post, scheme: "http", authority: "gw", path: "/v1/chat/completions")
        func refusal(_ body: String) -> APIError? {
            let result = core.validateRequest(
                path: "/v1/chat/completions", head: head, peer: nil, body: ByteBuffer(string: body))
            guard case .failure(let error)? = result else { return nil }
            return error
        }
        let empty = refusal(#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#)
        #expect(empty?.status == 400 && empty?.param == "model", "\(String(describing: empty))")
        for body in [#"[{"model":"m"}]"#, #""m""#] {
            let refused = refusal(body)
            #expect(refused?.status == 400 && refused?.param == nil, "\(body): \(String(describing: refused))")
        }
    }

}
