import FleetProtocol
import Foundation
import NIOCore
import Testing

func scanAnswer(_ text: String, chat: Bool = true) throws(ChunkScanner.Malformed) -> AnswerScanner.Answer {
    let buffer = ByteBuffer(string: text)
    let result: Result<AnswerScanner.Answer, ChunkScanner.Malformed> = buffer.withUnsafeReadableBytes { bytes in
        do throws(ChunkScanner.Malformed) { return .success(try AnswerScanner.scan(bytes, chat: chat)) } catch {
            return .failure(error)
        }
    }
    return try result.get()
}

@Suite("AnswerScanner")
struct AnswerScannerTests {
    static let chat =
        #"{"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"fleet-8b","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11},"system_fingerprint":"fp_1"}"#

    @Test(
        "A chat answer in any JSON spacing reads the same: usage, identity ranges, text bytes, the closing brace",
        arguments: [
            Self.chat,
            #"{"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "fleet-8b", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"}, "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11}, "system_fingerprint": "fp_1"}"#,
            "\n{\r\n \"id\" :\"chatcmpl-1\",\t\"object\":\"chat.completion\" ,\"created\":1700000000,\"model\":\"fleet-8b\",\"choices\":[ {\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello there\"},\"finish_reason\":\"stop\"} ],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":3}\n}\n",
        ])
    func spacing(text: String) throws {
        let answer = try scanAnswer(text)
        #expect(!answer.isError)
        #expect(answer.choices == 1)
        #expect(answer.promptTokens == 8)
        #expect(answer.completionTokens == 3)
        #expect(answer.textBytes == "Hello there".utf8.count)
        #expect(answer.hasCreated)
        let bytes = Array(text.utf8)
        func token(_ range: Range<Int>?) -> String? { range.map { String(decoding: bytes[$0], as: UTF8.self) } }
        #expect(token(answer.idRange) == "\"chatcmpl-1\"")
        #expect(token(answer.objectRange) == "\"chat.completion\"")
        #expect(token(answer.modelRange) == "\"fleet-8b\"")
        #expect(bytes[answer.closingBrace] == UInt8(ascii: "}"))
        #expect(bytes[(answer.closingBrace + 1)...].allSatisfy { $0 == 0x0A || $0 == 0x0D || $0 == 0x20 })
    }

    @Test("n > 1, tool calls with null content, logprobs and unknown members are accepted and counted")
    func richAnswer() throws {
        let answer = try scanAnswer(
            #"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},{"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}],"refusal":null},"logprobs":{"content":[{"token":"a","logprob":-0.1,"bytes":[97],"top_logprobs":[]}]},"finish_reason":"tool_calls"},{"index":1,"message":{"role":"assistant","content":"héllo ✓"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,"completion_tokens_details":{"reasoning_tokens":0}},"service_tier":"default"}"#
        )
        #expect(answer.choices == 2)
        #expect(answer.toolCalls == 2)
        #expect(answer.textBytes == "héllo ✓".utf8.count)
        #expect(answer.completionTokens == 9)
    }

    @Test("A legacy completion answer: `text`, and a chat `message` is not one")
    func legacy() throws {
        let text =
            #"{"id":"cmpl-1","object":"text_completion","created":2,"model":"m","choices":[{"index":0,"text":" once upon","logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#
        let answer = try scanAnswer(text, chat: false)
        #expect(answer.textBytes == " once upon".utf8.count)
        #expect(throws: ChunkScanner.Malformed.self) { try scanAnswer(text, chat: true) }
        #expect(throws: ChunkScanner.Malformed.self) { try scanAnswer(Self.chat, chat: false) }
    }

    @Test("Without usage or identity members the answer is still one; usage null is no usage")
    func minimal() throws {
        let bare = try scanAnswer(#"{"choices":[{"message":{"content":"hi"}}]}"#)
        #expect(bare.idRange == nil && bare.objectRange == nil && bare.modelRange == nil && !bare.hasCreated)
        #expect(bare.promptTokens == nil && bare.completionTokens == nil)
        let nullUsage = try scanAnswer(#"{"choices":[{"message":{"content":"hi"}}],"usage":null}"#)
        #expect(nullUsage.completionTokens == nil)
    }

    @Test("An error body is reported as one")
    func error() throws {
        let answer = try scanAnswer(#"{"error":{"message":"overloaded","type":"server_error","code":null}}"#)
        #expect(answer.isError)
    }

    @Test(
        "Anything that is not such an answer is refused",
        arguments: [
            "", "null", "[]", "{}", "{", #"{"choices":[]}"#, #"{"choices":{}}"#, #"{"id":"x"}"#,
            #"{"choices":[1]}"#, #"{"choices":[{}]}"#, #"{"choices":[{"text":"chat needs a message"}]}"#,
            #"{"choices":[{"message":"hi"}]}"#, #"{"choices":[{"message":{"content":5}}]}"#,
            #"{"choices":[{"message":{"role":null,"content":"hi"}}]}"#,
            #"{"choices":[{"message":{"content":"hi","tool_calls":{}}}]}"#,
            #"{"choices":[{"message":{"content":"hi","tool_calls":[1]}}]}"#,
            #"{"choices":[{"message":{"content":"hi"},"finish_reason":1}]}"#,
            #"{"choices":[{"index":-1,"message":{"content":"hi"}}]}"#,
            #"{"choices":[{"index":"0","message":{"content":"hi"}}]}"#,
            #"{"id":7,"choices":[{"message":{"content":"hi"}}]}"#,
            #"{"model":null,"choices":[{"message":{"content":"hi"}}]}"#,
            #"{"created":"now","choices":[{"message":{"content":"hi"}}]}"#,
            #"{"created":1.5,"choices":[{"message":{"content":"hi"}}]}"#,
            #"{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":-1}}"#,
            #"{"choices":[{"message":{"content":"hi"}}],"usage":{"completion_tokens":2.5}}"#,
            #"{"choices":[{"message":{"content":"hi"}}],"usage":7}"#,
            #"{"choices":[{"message":{"content":"hi"}}]} trailing"#,
            #"{"choices":[{"message":{"content":"hi"}}]}{"choices":[]}"#,
            #"{"choices":[{"message":{"content":"hi"}}],}"#,
            #"{"choices":[{"message":{"content":"bad \x escape"}}]}"#,
            "data: {\"choices\":[{\"message\":{\"content\":\"hi\"}}]}\n\n",
        ])
    func refused(text: String) {
        #expect(throws: ChunkScanner.Malformed.self) { try scanAnswer(text) }
    }

    @Test("Invalid UTF-8 and raw control characters in a string, and nesting past the bound, are refused")
    func bytes() {
        for bad: [UInt8] in [[0xC3, 0x28], [0xED, 0xA0, 0x80], [0xFF], [0x0A]] {
            var buffer = ByteBuffer(string: #"{"choices":[{"message":{"content":"a"#)
            buffer.writeBytes(bad)
            buffer.writeString(#""}}]}"#)
            let result: Result<AnswerScanner.Answer, ChunkScanner.Malformed> = buffer.withUnsafeReadableBytes { bytes in
                do throws(ChunkScanner.Malformed) { return .success(try AnswerScanner.scan(bytes, chat: true)) } catch {
                    return .failure(error)
                }
            }
            #expect(throws: ChunkScanner.Malformed.self) { try result.get() }
        }
        let deep = String(repeating: "[", count: 40) + String(repeating: "]", count: 40)
        #expect(throws: ChunkScanner.Malformed.self) {
            try scanAnswer(#"{"choices":[{"message":{"content":"hi"},"logprobs":"# + deep + "}]}")
        }
    }

    @Test("Every valid answer JSONSerialization reads agrees on the counts")
    func agreesWithFoundation() throws {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var choices: [[String: Any]] = []
            var textBytes = 0
            for index in 0..<Int.random(in: 1...3, using: &generator) {
                let text = String((0..<Int.random(in: 0...20, using: &generator)).map { _ in
                    "aé✓ \"\\\n".randomElement(using: &generator)!
                })
                textBytes += try JSONSerialization.data(withJSONObject: [text]).count - 4
                choices.append(["index": index, "message": ["role": "assistant", "content": text], "finish_reason": "stop"])
            }
            let prompt = Int.random(in: 0...1_000, using: &generator)
            let completion = Int.random(in: 0...1_000, using: &generator)
            let object: [String: Any] = [
                "id": "c", "object": "chat.completion", "created": 5, "model": "m", "choices": choices,
                "usage": ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion],
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            let answer = try scanAnswer(String(decoding: data, as: UTF8.self))
            #expect(answer.choices == choices.count)
            #expect(answer.promptTokens == prompt)
            #expect(answer.completionTokens == completion)
            #expect(answer.textBytes == textBytes)
        }
    }
}
