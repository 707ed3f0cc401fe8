import FleetProtocol
import Foundation
import NIOCore
import Testing

func scan(_ text: String) throws(ChunkScanner.Malformed) -> ChunkScanner.Chunk {
    let buffer = ByteBuffer(string: text)
    return try ChunkScanner.scan(buffer, range: 0..<buffer.readableBytes)
}

@Suite("ChunkScanner")
struct ChunkScannerTests {
    @Test(
        "The same chunk in any JSON spacing reads the same",
        arguments: [
            #"{"id":"c1","object":"chat.completion.chunk","created":9,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#,
            #"{"id": "c1", "object": "chat.completion.chunk", "created": 9, "model": "m", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}]}"#,
            "{\n  \"id\" : \"c1\",\r\n\t\"created\":9 , \"choices\" : [ { \"delta\" : { \"content\" : \"hi\" } } ] }",
        ])
    func spacing(text: String) throws {
        let chunk = try scan(text)
        #expect(chunk.choice?.content == "hi")
        #expect(chunk.created == 9)
        #expect(chunk.carriesOutput)
        #expect(!chunk.isError)
    }

    @Test("Role-only, finish, usage-only, tool-call and error chunks are told apart")
    func kinds() throws {
        let role = try scan(#"{"id":"a","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#)
        #expect(role.choice?.hasRole == true)
        #expect(!role.carriesOutput)
        let finish = try scan(#"{"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#)
        #expect(finish.choice?.finishReason == "stop")
        #expect(finish.carriesOutput)
        let usage = try scan(
            #"{"id":"a","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#)
        #expect(usage.choice == nil)
        #expect(usage.promptTokens == 3)
        #expect(usage.completionTokens == 4)
        let tool = try scan(#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#)
        #expect(tool.choice?.hasToolCalls == true)
        #expect(tool.carriesOutput)
        let error = try scan(#"{"error":{"message":"no","type":"server_error"}}"#)
        #expect(error.isError)
        let legacy = try scan(#"{"id":"a","object":"text_completion","choices":[{"text":"ok","index":0}]}"#)
        #expect(legacy.choice?.content == "ok")
    }

    /// Found by an attack (session 19): `prompt_tokens` 9223372036854775807 trapped the agent when its
    /// usage added it to the completion count; a gateway summing a central's counts could trap alike.
    /// helper-80: a negative count was read as 0, and a lying runtime's `-100` zeroed what the request
    /// was charged; a count that cannot be one is now unknown, and the reader counts for itself.
    @Test("Usage counts are at most maxTokenCount; negative, past Int and non-integers are unknown, not 0")
    func usageBounds() throws {
        let huge = try scan(#"{"choices":[],"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":-5}}"#)
        #expect(huge.promptTokens == ChunkScanner.maxTokenCount && huge.completionTokens == nil)
        let past = try scan(#"{"choices":[],"usage":{"prompt_tokens":99999999999999999999999,"completion_tokens":4}}"#)
        #expect(past.promptTokens == nil && past.completionTokens == 4)
        let garbage = try scan(#"{"choices":[],"usage":{"prompt_tokens":1e300,"completion_tokens":"abc"}}"#)
        #expect(garbage.hasUsage && garbage.promptTokens == nil && garbage.completionTokens == nil)
        #expect(try scan(#"{"choices":[],"usage":{}}"#).hasUsage)
        #expect(try !scan(#"{"choices":[],"usage":null}"#).hasUsage)
        let usage = Usage(promptTokens: Int.max, completionTokens: Int.max)
        #expect(usage.totalTokens == Int.max)
    }

    /// vLLM sends `"tool_calls": []` with every content delta (the review of session 19): no call, and
    /// the car path failed every job as a tool call.
    @Test(
        "reasoning_content and reasoning: the string token's range is kept; null, \"\" and a non-string are not a token"
    )
    func reasoning() throws {
        for key in ["reasoning_content", "reasoning"] {
            let text = #"{"choices":[{"index":0,"delta":{"\#(key)":"th\"ink","content":"hi"}}]}"#
            let choice = try #require(try scan(text).choice)
            let range = try #require(choice.reasoningToken)
            #expect(String(decoding: Array(text.utf8)[range], as: UTF8.self) == #""th\"ink""#)
            #expect(choice.hasOtherOutput && choice.content == "hi")
        }
        for value in ["null", #""""#] {
            let choice = try #require(try scan(#"{"choices":[{"delta":{"reasoning_content":\#(value)}}]}"#).choice)
            #expect(choice.reasoningToken == nil && !choice.hasOtherOutput && !choice.carriesOutput, "\(value)")
        }
        // Not a string: output the relay passes on (as before), but no text to carry.
        let object = try #require(try scan(#"{"choices":[{"delta":{"reasoning":{"summary":"x"}}}]}"#).choice)
        #expect(object.reasoningToken == nil && object.hasOtherOutput)
        // Another member of the same length is not it.
        let other = try #require(try scan(#"{"choices":[{"delta":{"reasoning_contenT":"x"}}]}"#).choice)
        #expect(other.reasoningToken == nil && other.hasOtherOutput)
    }

    @Test("refusal: the string token's range is kept beside the thinking; null and \"\" are not a token")
    func refusal() throws {
        let text =
            #"{"choices":[{"index":0,"delta":{"reasoning_content":"hm","refusal":"I can\u0027t","content":""}}]}"#
        let choice = try #require(try scan(text).choice)
        let range = try #require(choice.refusalToken)
        #expect(String(decoding: Array(text.utf8)[range], as: UTF8.self) == #""I can\u0027t""#)
        #expect(choice.reasoningToken != nil && choice.hasOtherOutput && choice.carriesOutput)
        for value in ["null", #""""#] {
            let choice = try #require(try scan(#"{"choices":[{"delta":{"refusal":\#(value)}}]}"#).choice)
            #expect(choice.refusalToken == nil && !choice.hasOtherOutput && !choice.carriesOutput, "\(value)")
        }
    }

    @Test("\"error\": null beside the choices is no error; any other error value is one")
    func errorNull() throws {
        let chunk = try scan(#"{"error":null,"choices":[{"index":0,"delta":{"content":"Hello"}}]}"#)
        #expect(!chunk.isError && chunk.choice?.content == "Hello")
        #expect(try scan(#"{"error":{"message":"x"}}"#).isError)
        #expect(try scan(#"{"error":"x"}"#).isError)
        #expect(
            try scanAnswer(
                #"{"error":null,"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#
            ).isError == false)
        #expect(try scanAnswer(#"{"error":{"message":"x"}}"#).isError)
    }

    @Test("logprobs: chat's true, or a legacy completion's count (0 asks for the sampled tokens') asks for them")
    func wantsLogprobs() throws {
        func wants(_ value: String) throws -> Bool {
            try JSONDecoder().decode(
                CompletionRequest.self, from: Data(#"{"model":"m","prompt":"x","logprobs":\#(value)}"#.utf8)
            )
            .wantsLogprobs
        }
        #expect(try wants("0") && wants("5") && wants("true"))
        #expect(try !wants("false") && !wants("null"))
        // Chat's is a boolean: a number or anything else is not a request for them (cars serve it).
        func chat(_ value: String) throws -> Bool {
            try JSONDecoder().decode(
                CompletionRequest.self,
                from: Data(#"{"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":\#(value)}"#.utf8)
            ).wantsLogprobs
        }
        #expect(try chat("true") && !chat("false") && !chat("0") && !chat("1") && !chat(#""true""#) && !chat("{}"))
        #expect(
            try !JSONDecoder().decode(CompletionRequest.self, from: Data(#"{"model":"m","prompt":"x"}"#.utf8))
                .wantsLogprobs)
    }

    @Test("An empty tool_calls array or object is no tool call; a non-empty one is")
    func emptyToolCalls() throws {
        for empty in ["[]", "[ ]", "{}", "null", "{ \n }"] {
            let chunk = try scan(#"{"choices":[{"index":0,"delta":{"content":"Hi","tool_calls":"# + empty + "}}]}")
            #expect(chunk.choice?.hasToolCalls == false, "\(empty)")
            #expect(chunk.choice?.hasOtherOutput == false, "\(empty)")
        }
        let call = try scan(#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}"#)
        #expect(call.choice?.hasToolCalls == true)
        let audio = try scan(#"{"choices":[{"index":0,"delta":{"content":"Hi","audio":{}}}]}"#)
        #expect(audio.choice?.hasOtherOutput == false)
    }

    @Test("Escapes are decoded, including surrogate pairs; a lone surrogate becomes U+FFFD")
    func escapes() throws {
        let chunk = try scan(#"{"choices":[{"delta":{"content":"a\"b\\c\n\u00e9\ud83d\ude97\ud800"}}]}"#)
        #expect(chunk.choice?.content == "a\"b\\c\né🚗\u{FFFD}")
    }

    @Test("Several choices are all read")
    func severalChoices() throws {
        let chunk = try scan(#"{"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]}"#)
        #expect(chunk.choice?.content == "x")
        #expect(chunk.otherChoices.map(\.index) == [1])
        #expect(chunk.otherChoices.first?.content == "y")
    }

    @Test(
        "Malformed payloads throw",
        arguments: [
            "", "null", "[]", "{", "{\"a\":}", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":-}",
            "{\"a\":tru}", "{\"a\":\"x}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\u{01}\"}", "{} {}",
            String(repeating: "[", count: 40) + String(repeating: "]", count: 40),
            "{\"a\":" + String(repeating: "[", count: 40) + String(repeating: "]", count: 40) + "}",
        ])
    func malformed(text: String) {
        #expect(throws: ChunkScanner.Malformed.self) { try scan(text) }
    }

    /// helper-97: `"content": 12345` was skipped, so the chunk passed as one carrying no text.
    @Test(
        "A choice's content or text that is neither a string nor null is malformed, decoded or as a token",
        arguments: ["12345", "{}", "[\"a\"]", "true", "-1"])
    func contentOfAnotherType(value: String) {
        for text in [
            "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\(value)}}]}",
            "{\"choices\":[{\"index\":0,\"text\":\(value)}]}",
        ] {
            let buffer = ByteBuffer(string: text)
            #expect(throws: ChunkScanner.Malformed.self, "\(text)") { try scan(text) }
            #expect(throws: ChunkScanner.Malformed.self, "\(text)") {
                try ChunkScanner.scan(buffer, range: 0..<buffer.readableBytes, content: .token)
            }
        }
        let null = "{\"choices\":[{\"index\":0,\"delta\":{\"content\": null}}]}"
        #expect((try? scan(null))?.choice.map { $0.content == nil && $0.contentToken == nil } == true)
    }

    @Test("The eight-bytes-at-a-time string run stops exactly where the byte-wise definition does")
    func plainRunMatchesBytewise() {
        func bytewise(_ bytes: [UInt8], from start: Int) -> Int {
            var index = start
            while index < bytes.count, ChunkScanner.Reader.isPlain(bytes[index]) { index += 1 }
            return index
        }
        // Every byte value at every position of a 24-byte plain run (each lane of each word, and the tail).
        let plain = Array(repeating: UInt8(ascii: "a"), count: 24)
        for value in 0...255 {
            for position in 0..<plain.count {
                var bytes = plain
                bytes[position] = UInt8(value)
                for start in [0, 1, 7, position] where start <= bytes.count {
                    let fast = bytes.withUnsafeBytes { ChunkScanner.Reader.plainRun($0, from: start) }
                    #expect(fast == bytewise(bytes, from: start), "byte \(value) at \(position) from \(start)")
                }
            }
        }
        // Random texts weighted toward the bytes that stop a run and their neighbours.
        var generator = SystemRandomNumberGenerator()
        let interesting: [UInt8] = [0x00, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xC3, 0xFF]
        for _ in 0..<2_000 {
            let count = Int.random(in: 0...40, using: &generator)
            let bytes = (0..<count).map { _ in
                Bool.random(using: &generator)
                    ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0x20..<0x7F, using: &generator)
            }
            let start = count == 0 ? 0 : Int.random(in: 0...count, using: &generator)
            let fast = bytes.withUnsafeBytes { ChunkScanner.Reader.plainRun($0, from: start) }
            #expect(fast == bytewise(bytes, from: start), "\(bytes) from \(start)")
        }
    }

    @Test("Invalid UTF-8 is refused: overlongs, surrogates, truncated and stray continuation bytes")
    func utf8() {
        for bad: [UInt8] in [
            [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0x80], [0xF5, 0x80, 0x80, 0x80], [0xC3, 0x28],
        ] {
            var buffer = ByteBuffer(string: "{\"choices\":[{\"delta\":{\"content\":\"")
            buffer.writeBytes(bad)
            buffer.writeString("\"}}]}")
            #expect(throws: ChunkScanner.Malformed.self) {
                try ChunkScanner.scan(buffer, range: 0..<buffer.readableBytes)
            }
        }
        var good = ByteBuffer(string: "{\"choices\":[{\"delta\":{\"content\":\"")
        good.writeBytes([0xF0, 0x9F, 0x9A, 0x97, 0xC3, 0xA9])
        good.writeString("\"}}]}")
        #expect((try? ChunkScanner.scan(good, range: 0..<good.readableBytes))?.choice?.content == "🚗é")
    }
}

@Suite("JSONBody")
struct JSONBodyTests {
    @Test("Editing keeps every other member byte for byte")
    func editing() throws {
        let body = ByteBuffer(
            string:
                #"{"model":"m","stream":false,"tools":[{"type":"function","function":{"name":"f"}}],"top_p":0.30000000000000004,"stream_options":{"include_usage":false}}"#
        )
        let edited = try #require(
            JSONBody.editing(body, removing: ["stream", "stream_options"], appending: [("stream", "true")]))
        #expect(
            String(buffer: edited)
                == #"{"model":"m","tools":[{"type":"function","function":{"name":"f"}}],"top_p":0.30000000000000004,"stream":true}"#
        )
        #expect(JSONBody.editing(ByteBuffer(string: "[1]"), removing: [], appending: []) == nil)
        #expect(JSONBody.editing(ByteBuffer(string: "{\"a\":1} x"), removing: [], appending: []) == nil)
    }

    @Test("A body with a byte order mark, which the validator accepts, can be edited (#20: the request fuzzer)")
    func byteOrderMark() throws {
        let body = ByteBuffer(bytes: [0xEF, 0xBB, 0xBF] + Array(#"{"model":"m","max_tokens":5,"prompt":"a"}"#.utf8))
        let edited = try #require(JSONBody.editing(body, removing: ["stream"], appending: [("stream", "true")]))
        #expect(String(buffer: edited) == #"{"model":"m","max_tokens":5,"prompt":"a","stream":true}"#)
        let continued = try #require(JSONBody.continuation(of: body, text: "b", delivered: 2))
        #expect(String(buffer: continued) == #"{"model":"m","prompt":"ab","max_tokens":3}"#)
    }
}
