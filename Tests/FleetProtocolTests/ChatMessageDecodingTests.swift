import FleetProtocol
import NIOCore
import Testing

@Suite("Chat messages: content parts and error paths")
struct ChatMessageDecodingTests {
    private func decode(_ json: String) -> Result<CompletionRequest, APIError> {
        Result { () throws(APIError) in try JSON.decodeRequest(CompletionRequest.self, from: ByteBuffer(string: json)) }
    }

    @Test("Text parts are joined; a refusal part counts as text")
    func textParts() throws {
        let request = try self.decode(
            #"{"model":"m","messages":[{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"refusal","refusal":"b"}]}]}"#
        ).get()
        #expect(request.messages?.first?.content == "ab")
    }

    @Test("An image part is a 400 naming its place, not dropped in silence")
    func imagePart() {
        let result = self.decode(
            #"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#
        )
        guard case .failure(let error) = result else {
            Issue.record("decoded: \(result)")
            return
        }
        #expect(error.status == 400)
        #expect(error.param == "messages[1].content[1]")
        #expect(error.message.contains("'image_url'") && error.message.contains("messages[1].content[1]"))
        #expect(!error.message.contains("What is this"))
    }

    @Test(
        "A null content is a 400 but in an assistant's or a function's turn (helper-127: a user's was an empty prompt)")
    func nullContent() {
        for role in ["user", "system", "developer", "tool"] {
            let result = self.decode(
                #"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"\#(role)","content":null}]}"#)
            guard case .failure(let error) = result else {
                Issue.record("\(role): decoded")
                continue
            }
            #expect(error.param == "messages[1].content", "\(role)")
            #expect(
                error.message
                    == "Invalid type for 'messages[1].content': expected a string or an array of text parts, but got null instead."
            )
        }
        for role in ["assistant", "function"] {
            let result = self.decode(#"{"model":"m","messages":[{"role":"\#(role)","content":null}]}"#)
            #expect((try? result.get())?.messages?.first?.content == "", "\(role)")
        }
    }

    @Test("An error body always has param and code, null when absent, as OpenAI's")
    func errorBody() {
        let body = String(buffer: JSON.buffer(APIError.invalidRequest("No.").body))
        #expect(
            body == #"{"error":{"code":"invalid_request","message":"No.","param":null,"type":"invalid_request_error"}}"#
        )
        let unnamed = String(buffer: JSON.buffer(APIErrorBody(message: "x", type: "server_error", code: nil)))
        #expect(unnamed.contains(#""code":null"#) && unnamed.contains(#""param":null"#))
    }

    @Test("Type errors name the field with OpenAI's path")
    func paths() {
        guard case .failure(let error) = self.decode(#"{"model":"m","messages":[{"role":"user","content":5}]}"#)
        else {
            Issue.record("decoded")
            return
        }
        #expect(error.param == "messages[0].content")
        guard case .failure(let error) = self.decode(#"{"model":"m","messages":[{"role":7,"content":"x"}]}"#)
        else {
            Issue.record("decoded")
            return
        }
        #expect(error.param == "messages[0].role")
        #expect(error.message == "Invalid type for 'messages[0].role': expected a string, but got a number instead.")
        guard
            case .failure(let error) = self.decode(
                #"{"model":"m","messages":[{"role":"user","content":"x"},{"content":"y"}]}"#)
        else {
            Issue.record("decoded")
            return
        }
        #expect(error.param == "messages[1].role")
    }

    @Test(
        "A number that is no integer names its member, as OpenAI's 'Invalid type' does (helper-60)",
        arguments: [
            (#""n":1.5"#, "n", "Invalid type for 'n': expected an integer, but got a decimal number instead."),
            (
                #""max_tokens":12.5"#, "max_tokens",
                "Invalid type for 'max_tokens': expected an integer, but got a decimal number instead."
            ),
            (#""seed":1e30"#, "seed", "Invalid value for 'seed': the number is out of range."),
            (
                #""max_tokens":"5""#, "max_tokens",
                "Invalid type for 'max_tokens': expected an integer, but got a string instead."
            ),
            (#""stream":1"#, "stream", "Invalid type for 'stream': expected a boolean, but got a number instead."),
            (
                #""temperature":"hot""#, "temperature",
                "Invalid type for 'temperature': expected a number, but got a string instead."
            ),
        ])
    func integerMembers(member: String, param: String, message: String) {
        guard
            case .failure(let error) = self.decode(
                #"{"model":"m","messages":[{"role":"user","content":"x"}],"# + member + "}")
        else {
            Issue.record("decoded")
            return
        }
        #expect(error.param == param)
        #expect(error.message == message)
        // A whole number written as a decimal is a whole number, as at OpenAI.
        let whole = self.decode(#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100.0}"#)
        #expect((try? whole.get())?.maxTokens == 100)
        // Malformed JSON is still said to be so.
        guard case .failure(let broken) = self.decode(#"{"model":"m","n":1.5,"#) else {
            Issue.record("decoded")
            return
        }
        #expect(broken.message == "We could not parse the JSON body of your request.")
    }

    @Test("The Responses request names a decimal max_output_tokens")
    func responsesIntegerMember() {
        let result = Result { () throws(APIError) in
            try JSON.decodeRequest(
                ResponsesRequest.self, from: ByteBuffer(string: #"{"model":"m","input":"x","max_output_tokens":2.5}"#))
        }
        guard case .failure(let error) = result else {
            Issue.record("decoded")
            return
        }
        #expect(error.param == "max_output_tokens")
        #expect(error.message.contains("expected an integer, but got a decimal number"))
    }
}
