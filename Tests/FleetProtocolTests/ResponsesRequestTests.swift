import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("ResponsesRequest")
struct ResponsesRequestTests {
    static func decode(_ json: String) throws(APIError) -> ResponsesRequest {
        try JSON.decodeRequest(ResponsesRequest.self, from: ByteBuffer(string: json))
    }

    @Test("A string input with instructions maps onto a system and a user message, limits and sampling carried over")
    func stringInput() throws {
        let request = try Self.decode(
            #"{"model":"fleet-8b","input":"Hi","instructions":"Be brief.","max_output_tokens":40,"temperature":0.5,"top_p":0.9,"stream":true,"user":"u1","metadata":{"k":"v"},"store":false,"background":false,"tools":[]}"#
        )
        let chat = try request.chatRequest()
        #expect(
            chat.messages == [
                ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
            ])
        #expect(chat.maxTokens == 40 && chat.temperature == 0.5 && chat.topP == 0.9)
        #expect(chat.stream == true && chat.user == "u1" && chat.model == "fleet-8b")
        let body = String(buffer: JSON.buffer(chat))
        #expect(!body.contains("metadata") && !body.contains("\"k\""), "metadata stays at the gateway")
        let template = request.responseTemplate(id: "resp_1", createdAt: 9)
        #expect(
            template.metadata == ["k": "v"] && template.instructions == "Be brief." && template.maxOutputTokens == 40)
        #expect(template.temperature == 0.5 && template.topP == 0.9)
        // Left out, they are echoed as the values in effect, as OpenAI does.
        let bare = try Self.decode(#"{"model":"m","input":"Hi"}"#).responseTemplate(id: "resp_2", createdAt: 9)
        #expect(bare.temperature == 1 && bare.topP == 1)
    }

    @Test("An earlier answer's output sent back as input: its reasoning item is dropped, its message kept")
    func reasoningItemsSentBack() throws {
        let request = try Self.decode(
            #"{"model":"m","include":["reasoning.encrypted_content"],"top_logprobs":0,"input":[{"role":"user","content":"q"},{"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"hmm"}],"encrypted_content":null},{"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"a","annotations":[]}]},{"role":"user","content":"next"}]}"#
        )
        #expect(
            try request.chatRequest().messages == [
                ChatMessage(role: "user", content: "q"), ChatMessage(role: "assistant", content: "a"),
                ChatMessage(role: "user", content: "next"),
            ])
    }

    @Test("Message items: text parts joined, developer sent as system, earlier assistant output kept")
    func items() throws {
        let request = try Self.decode(
            #"{"model":"m","input":[{"role":"developer","content":"Rules."},{"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_text","text":"b"}]},{"type":"message","role":"assistant","id":"msg_1","status":"completed","content":[{"type":"output_text","text":"c","annotations":[]}]},{"role":"user","content":"d"}]}"#
        )
        #expect(
            try request.chatRequest().messages == [
                ChatMessage(role: "system", content: "Rules."), ChatMessage(role: "user", content: "ab"),
                ChatMessage(role: "assistant", content: "c"), ChatMessage(role: "user", content: "d"),
            ])
    }

    @Test("Function tools, tool_choice and an earlier turn's calls and their outputs take their chat forms")
    func functionCalling() throws {
        let request = try Self.decode(
            #"""
            {"model":"m","tools":[{"type":"function","name":"weather","description":"d","parameters":{"type":"object"},"strict":true}],
             "tool_choice":{"type":"function","name":"weather"},"parallel_tool_calls":false,
             "input":[{"role":"user","content":"hi"},
                      {"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Paris\"}","id":"fc_1","status":"completed"},
                      {"type":"function_call","call_id":"c2","name":"time","arguments":"{}"},
                      {"type":"function_call_output","call_id":"c1","output":"sunny"},
                      {"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"noon"}]}]}
            """#)
        let chat = try request.chatRequest()
        #expect(
            chat.tools
                == .array([
                    .object([
                        "type": .string("function"),
                        "function": .object([
                            "name": .string("weather"), "description": .string("d"),
                            "parameters": .object(["type": .string("object")]), "strict": .bool(true),
                        ]),
                    ])
                ]))
        #expect(
            chat.toolChoice
                == .object(["type": .string("function"), "function": .object(["name": .string("weather")])]))
        let messages = try #require(chat.messages)
        #expect(messages.map(\.role) == ["user", "assistant", "tool", "tool"])
        #expect(messages[1].toolCalls?.map(\.id) == ["c1", "c2"])
        #expect(messages[1].toolCalls?.first?.function?.arguments == #"{"city":"Paris"}"#)
        #expect(messages[2].toolCallID == "c1" && messages[2].content == "sunny")
        #expect(messages[3].toolCallID == "c2" && messages[3].content == "noon")
        // As a chat runtime reads it: the calls' message has content null, each output its call's id.
        let body = String(buffer: JSON.buffer(chat))
        #expect(body.contains(#"{"content":null,"role":"assistant","tool_calls":[{"function""#), "\(body)")
        #expect(body.contains(#""tool_call_id":"c1""#), "\(body)")
        // The response echoes the tools, the choice and parallel_tool_calls.
        let template = request.responseTemplate(id: "resp_1", createdAt: 0)
        #expect(template.tools.count == 1 && template.parallelToolCalls == false)
        #expect(template.toolChoice == .object(["type": .string("function"), "name": .string("weather")]))
    }

    @Test("An output answers a call before it, and every call has its output, as OpenAI checks (helper-69)")
    func callPairs() throws {
        func chat(_ items: String) throws(APIError) -> CompletionRequest {
            let request = try? Self.decode(
                #"{"model":"m","tools":[{"type":"function","name":"f"}],"input":["# + items + "]}")
            return try request!.chatRequest()
        }
        func refusal(_ items: String) -> APIError? {
            do throws(APIError) {
                _ = try chat(items)
                return nil
            } catch {
                return error
            }
        }
        let call = #"{"type":"function_call","call_id":"c1","name":"f","arguments":"{}"}"#
        let output = #"{"type":"function_call_output","call_id":"c1","output":"ok"}"#
        let user = #"{"role":"user","content":"hi"}"#
        #expect(refusal([user, call, output].joined(separator: ",")) == nil)
        let early = refusal([user, output, call].joined(separator: ","))
        #expect(early?.param == "input[1].call_id")
        #expect(early?.message == "No tool call found for function call output with call_id c1.")
        let open = refusal([user, call].joined(separator: ","))
        #expect(open?.param == "input" && open?.message == "No tool output found for function call c1.")
    }

    @Test("text.format becomes chat's response_format: json_object as it is, json_schema nested, text none")
    func textFormat() throws {
        func format(_ json: String) throws -> JSONValue? {
            try Self.decode(#"{"model":"m","input":"x","text":{"format":"# + json + "}}").chatRequest().responseFormat
        }
        #expect(try format(#"{"type":"text"}"#) == nil)
        #expect(try format(#"{"type":"json_object"}"#) == .object(["type": .string("json_object")]))
        let schema = try format(
            #"{"type":"json_schema","name":"city","strict":true,"schema":{"type":"object"},"description":null}"#)
        #expect(
            schema
                == .object([
                    "type": .string("json_schema"),
                    "json_schema": .object([
                        "name": .string("city"), "strict": .bool(true), "schema": .object(["type": .string("object")]),
                    ]),
                ]))
        let request = try Self.decode(#"{"model":"m","input":"x","text":{"format":{"type":"json_object"}}}"#)
        #expect(
            request.responseTemplate(id: "resp_1", createdAt: 0).text
                == .object(["format": .object(["type": .string("json_object")])]))
    }

    @Test(
        "What is not served is a 400 naming the parameter",
        arguments: [
            (#""tools":[{"type":"web_search"}]"#, "tools"),
            (#""tools":[{"type":"web_search_preview"}]"#, "tools"),
            (#""tools":[{"type":"file_search","vector_store_ids":["vs_1"]}]"#, "tools"),
            (#""tools":[{"type":"code_interpreter","container":{"type":"auto"}}]"#, "tools"),
            (
                #""tools":[{"type":"computer_use_preview","display_width":1,"display_height":1,"environment":"linux"}]"#,
                "tools"
            ),
            (#""tools":[{"type":"custom","name":"f"}]"#, "tools"),
            (#""tools":[{"type":"function","parameters":{}}]"#, "tools[0].name"),
            (#""tool_choice":"required""#, "tool_choice"),
            (
                #""tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"allowed_tools","tools":[]}"#,
                "tool_choice"
            ),
            (#""background":true"#, "background"),
            (#""previous_response_id":"resp_123""#, "previous_response_id"),
            (#""store":true"#, "store"),
            (#""conversation":"conv_1""#, "conversation"),
            (#""prompt":{"id":"pmpt_1"}"#, "prompt"),
            (#""text":{"format":{"type":"grammar"}}"#, "text.format"),
            (#""text":{"format":{"type":"json_schema","schema":{}}}"#, "text.format.name"),
            (#""text":{"format":{"type":"json_schema","name":"x"}}"#, "text.format.schema"),
            (#""max_output_tokens":0"#, "max_output_tokens"),
            (#""temperature":3"#, "temperature"),
            (#""top_p":1.5"#, "top_p"),
            (#""top_logprobs":3"#, "top_logprobs"),
            (#""include":["message.output_text.logprobs"]"#, "include"),
        ] as [(String, String)])
    func refused(field: String, param: String) throws {
        let error = #expect(throws: APIError.self) {
            try Self.decode(#"{"model":"m","input":"x","# + field + "}").chatRequest()
        }
        #expect(error?.status == 400)
        #expect(error?.param == param, "\(error?.message ?? "")")
    }

    @Test(
        "Inputs that are not text messages are a 400 naming the item or part",
        arguments: [
            (#""input":[]"#, "input"),
            (
                #""input":[{"role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"x"}]}]"#,
                "input[0].content[1]"
            ),
            (
                #""input":[{"role":"user","content":"a"},{"type":"function_call_output","output":"1"}]"#,
                "input[1].call_id"
            ),
            (
                #""input":[{"role":"user","content":"a"},{"type":"function_call","call_id":"c","name":"f"}]"#,
                "input[1]"
            ),
            (
                #""input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_image","image_url":"x"}]}]"#,
                "input[0].output[0]"
            ),
            (#""input":[{"type":"item_reference","id":"msg_1"}]"#, "input[0]"),
            (#""input":[{"role":"tool","content":"a"}]"#, "input[0].role"),
            (#""input":[{"role":"user","content":7}]"#, "input[0].content"),
        ] as [(String, String)])
    func badInput(field: String, param: String) throws {
        let error = #expect(throws: APIError.self) {
            try Self.decode(#"{"model":"m","# + field + "}").chatRequest()
        }
        #expect(error?.param == param, "\(error?.message ?? "")")
    }

    /// helper-96: a lone surrogate was reported as the wrong type ("expected an array, but got a string").
    @Test("A string that is not valid text is refused as such, not as a value of the wrong type")
    func invalidString() throws {
        for (json, path) in [
            (#"{"model":"m","input":"hi \udc00"}"#, "input"),
            (#"{"model":"m","input":[{"role":"user","content":"hi \udc00"}]}"#, "input"),
        ] {
            let error = #expect(throws: APIError.self) { try Self.decode(json).chatRequest() }
            #expect(error?.status == 400)
            // (Foundation reports the bad escape without a path: "could not parse the JSON body".)
            #expect(error?.message.contains("expected") == false, "\(path): \(error?.message ?? "")")
        }
        #expect(try Self.decode(#"{"model":"m","input":"hi \ud83d\ude00"}"#).input == .text("hi 😀"))
    }

    @Test("A response object encodes OpenAI's null fields and decodes back")
    func responseObject() throws {
        var response = ResponseObject(id: "resp_1", createdAt: 3, model: "m")
        response.status = "completed"
        response.usage = .init(Usage(promptTokens: 4, completionTokens: 6))
        let json = String(buffer: JSON.buffer(response))
        #expect(json.contains(#""error":null"#) && json.contains(#""previous_response_id":null"#))
        #expect(json.contains(#""total_tokens":10"#) && json.contains(#""object":"response""#))
        #expect(try JSONDecoder().decode(ResponseObject.self, from: Data(json.utf8)) == response)
    }
}
