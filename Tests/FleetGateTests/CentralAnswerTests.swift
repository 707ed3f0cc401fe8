import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("CentralAnswer")
struct CentralAnswerTests {
    static func answer(chat: Bool = true, maxBytes: Int = 4 << 20) -> CentralAnswer {
        CentralAnswer(
            configuration: .init(
                chat: chat, maxBytes: maxBytes, fallbackID: "chatcmpl-req1", model: "client-model",
                created: 1_796_356_412))
    }

    static func finish(_ parts: [String], chat: Bool = true, maxBytes: Int = 4 << 20) -> CentralAnswer.Outcome {
        var answer = Self.answer(chat: chat, maxBytes: maxBytes)
        for part in parts { _ = answer.append(ByteBuffer(string: part)) }
        return answer.finish()
    }

    static func whole(_ parts: [String], chat: Bool = true) throws -> CentralAnswer.Whole {
        guard case .whole(let whole) = Self.finish(parts, chat: chat) else {
            Issue.record("not an answer: \(parts)")
            throw CancellationError()
        }
        return whole
    }

    static func json(_ buffer: ByteBuffer) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? NSDictionary)
    }

    static let complete =
        #"{"id":"chatcmpl-central","object":"chat.completion","created":1700000000,"model":"central-model","system_fingerprint":"fp_9","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":{"content":[]},"finish_reason":"tool_calls"},{"index":1,"message":{"role":"assistant","content":"Yo"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":0}}}"#

    @Test("A complete answer reaches the client byte for byte, in one part or many; usage is central's")
    func passThrough() throws {
        let text = Self.complete
        let utf8 = Array(text.utf8)
        for cut in [nil, 1, 57, utf8.count - 1] as [Int?] {
            let parts = cut.map { [String(decoding: utf8[..<$0], as: UTF8.self), String(decoding: utf8[$0...], as: UTF8.self)] } ?? [text]
            let whole = try Self.whole(parts)
            #expect(String(buffer: whole.body) == text)
            #expect(whole.promptTokens == 12)
            #expect(whole.completionTokens == 7)
            #expect(whole.reported)
        }
    }

    @Test("A wrong object is set right in place; a missing id, object, model or created is added; nothing else changes")
    func rewrites() throws {
        let original = try Self.json(ByteBuffer(string: Self.complete))
        // Wrong object.
        let wrong = Self.complete.replacingOccurrences(of: "\"chat.completion\"", with: "\"chat.completion.chunk\"")
        let fixed = try Self.whole([wrong])
        #expect(String(buffer: fixed.body) == Self.complete)
        // Each identity member removed in turn, and all at once: the client's answer is the original
        // with the defaults (the request's id, the client's model, the request's start).
        let members = [
            "\"id\":\"chatcmpl-central\",", "\"object\":\"chat.completion\",", "\"created\":1700000000,",
            "\"model\":\"central-model\",",
        ]
        for removed in members.map({ [$0] }) + [members] {
            var text = Self.complete
            for member in removed { text = text.replacingOccurrences(of: member, with: "") }
            let rewritten = try Self.json(try Self.whole([text + "\n"]).body)
            let expected = original.mutableCopy() as! NSMutableDictionary
            if removed.contains(members[0]) { expected["id"] = "chatcmpl-req1" }
            if removed.contains(members[2]) { expected["created"] = 1_796_356_412 }
            if removed.contains(members[3]) { expected["model"] = "client-model" }
            #expect(rewritten == expected, "\(removed)")
        }
    }

    @Test("Legacy completions: text_completion, the text counted when central gives no usage")
    func legacyEstimate() throws {
        let text = #"{"id":"cmpl-1","object":"text_completion","created":3,"model":"m","choices":[{"index":0,"text":"abcdefghi","finish_reason":"length"}]}"#
        let whole = try Self.whole([text], chat: false)
        #expect(String(buffer: whole.body) == text)
        #expect(!whole.reported)
        #expect(whole.completionTokens == 3, "9 bytes of text: 3 tokens at 4 bytes each, rounded up")
        let chat = try Self.whole(
            [#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#])
        #expect(chat.completionTokens == 1, "a tool call counts")
        #expect(try Self.json(chat.body)["object"] as? String == "chat.completion")
    }

    @Test("The bound: an answer of exactly the bound is held; a byte more ends it, not retryable, and drops what it held")
    func bound() throws {
        let text = Self.complete
        let size = text.utf8.count
        guard case .whole = Self.finish([text], maxBytes: size) else { throw CancellationError() }
        var answer = Self.answer(maxBytes: size - 1)
        let utf8 = Array(text.utf8)
        let first = answer.append(ByteBuffer(bytes: utf8[..<10]))
        let rest = answer.append(ByteBuffer(bytes: utf8[10...]))
        let more = answer.append(ByteBuffer(string: "x"))
        #expect(first && !rest && !more)
        #expect(answer.exceeded)
        guard case .failed(let failure) = answer.finish() else { throw CancellationError() }
        #expect(failure == .init(retryable: false, label: CentralAnswer.tooLargeLabel))
    }

    @Test("Not an answer — empty, malformed, an SSE stream, an error object — fails the attempt, retryable")
    func failures() throws {
        let cases: [([String], String)] = [
            ([], CentralAnswer.malformedLabel),
            ([""], CentralAnswer.malformedLabel),
            ([#"{"choices":[{"message":{"content":"cut"#], CentralAnswer.malformedLabel),
            (["data: " + Self.complete + "\n\ndata: [DONE]\n\n"], CentralAnswer.malformedLabel),
            ([#"{"object":"chat.completion","choices":[]}"#], CentralAnswer.malformedLabel),
            ([#"{"error":{"message":"busy","type":"server_error"}}"#], CentralAnswer.errorLabel),
        ]
        for (parts, label) in cases {
            guard case .failed(let failure) = Self.finish(parts) else {
                Issue.record("\(parts) was taken as an answer")
                continue
            }
            #expect(failure == .init(retryable: true, label: label), "\(parts)")
        }
        var invalid = ByteBuffer(string: #"{"choices":[{"message":{"content":""#)
        invalid.writeBytes([0xC0, 0xAF])
        invalid.writeString(#""}}]}"#)
        var answer = Self.answer()
        _ = answer.append(invalid)
        guard case .failed(let failure) = answer.finish() else { throw CancellationError() }
        #expect(failure.label == CentralAnswer.malformedLabel)
    }
}
