import FleetProtocol
import NIOCore
import Testing

@Suite("Chunk event scanner")
struct ChunkEventTests {
    /// The same chunk as our agent (compact) and Python's `json.dumps` (spaced) write it.
    static let cases: [(String, ChunkEvent.Kind, String)] = [
        (
            #"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            .roleOnly, ""
        ),
        (
            #"{"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant"}, "logprobs": null, "finish_reason": null}]}"#,
            .roleOnly, ""
        ),
        (#"{"choices":[{"delta":{"content":"hi"},"finish_reason":null,"index":0}]}"#, .content, "hi"),
        (#"{"choices": [{"delta": {"content": "hi"}, "finish_reason": null, "index": 0}]}"#, .content, "hi"),
        (
            "{ \"choices\" :\t[ { \"delta\" : { \"content\" : \"a\\\"b\\\\c\\nd\\u00e9\\ud83d\\ude97\" } } ] }",
            .content, "a\"b\\c\nd\u{e9}\u{1F697}"
        ),
        (#"{"choices":[{"text":"a","index":0,"finish_reason":null}]}"#, .content, "a"),
        (#"{"choices": [{"text": "", "index": 0, "finish_reason": "length"}]}"#, .finish, ""),
        (#"{"choices":[{"delta":{},"finish_reason":"stop","index":0}]}"#, .finish, ""),
        (#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#, .content, ""),
        (#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#, .usageOnly, ""),
        (#"{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}"#, .usageOnly, ""),
        (#"{"error":{"message":"x","type":"server_error"}}"#, .error, ""),
        (#"{"error": {"message": "x"}}"#, .error, ""),
        (#"{"choices":[{"delta":{"content":"x"}}],"error":{"message":"forged"}}"#, .error, "x"),
        (#"{"usage":null,"choices":[{"delta":{"content":"ok"}}]}"#, .content, "ok"),
        (#"{"foo":1}"#, .notAChunk, ""),
        (#"[1,2]"#, .notAChunk, ""),
        (#"{"choices":[{"delta":{"content":"unterminated"#, .notAChunk, ""),
        (#"{"choices":[]} trailing"#, .notAChunk, ""),
        ("not json", .notAChunk, ""),
        ("", .notAChunk, ""),
        ("[DONE]", .done, ""),
    ]

    @Test("Events are classified and their text extracted, whatever the JSON spacing", arguments: cases)
    func classify(json: String, kind: ChunkEvent.Kind, text: String) {
        let event = SSE.event(json)
        #expect(ChunkEvent(event).kind == kind)
        #expect(ChunkEvent(data: json).kind == kind)
        #expect(ChunkEvent.text(of: event) == text)
    }

    @Test("Only role chunks, keep-alives and [DONE] do not count as the first token")
    func firstToken() {
        #expect(
            ChunkEvent.Kind.allCases.filter { !ChunkEvent(kindOf: $0).carriesToken } == [.roleOnly, .done, .noData])
    }

    @Test("Forged SSE fields are ignored; several data lines are joined; CRLF lines are read")
    func sseFields() {
        let forged = ByteBuffer(
            string: "event: error\nid: 7\nretry: 1\n: ping\ndata: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n")
        #expect(ChunkEvent(forged).kind == .content)
        let split = ByteBuffer(string: "data: {\"choices\":\r\ndata: [{\"text\":\"ab\"}]}\r\n\r\n")
        #expect(ChunkEvent(split).kind == .content)
        #expect(ChunkEvent.text(of: split) == "ab")
        #expect(ChunkEvent(ByteBuffer(string: ": ping - 2026-12-01\n\n")).kind == .noData)
        #expect(ChunkEvent(ByteBuffer(string: "event: x\nid: 1\n\n")).kind == .noData)
        #expect(ChunkEvent(ByteBuffer(string: "data:[DONE]\n\n")).kind == .done)
    }

    @Test("Invalid UTF-8 becomes U+FFFD; hostile nesting and lone surrogates do not trap")
    func hostile() {
        var invalid = ByteBuffer(string: "data: {\"choices\":[{\"delta\":{\"content\":\"a")
        invalid.writeBytes([0xFF, 0xC3])
        invalid.writeString("b\"}}]}\n\n")
        #expect(ChunkEvent(invalid).kind == .content)
        #expect(ChunkEvent.text(of: invalid) == "a\u{FFFD}\u{FFFD}b")
        let deep = "{\"choices\":[{\"delta\":{\"x\":" + String(repeating: "[", count: 200_000) + "}}]}"
        #expect(ChunkEvent(data: deep).kind == .notAChunk)
        let closedDeep =
            "{\"choices\":[{\"delta\":{\"x\":" + String(repeating: "[", count: 100_000)
            + String(repeating: "]", count: 100_000) + ",\"content\":\"y\"}}]}"
        #expect(ChunkEvent(data: closedDeep).kind == .content)
        #expect(
            ChunkEvent.text(of: SSE.event(#"{"choices":[{"text":"\ud800x\udc00\u12"}]}"#)) == "\u{FFFD}x\u{FFFD}u12")
    }
}

extension ChunkEvent {
    /// A representative event of each kind, for the first-token table.
    init(kindOf kind: Kind) {
        switch kind {
        case .roleOnly: self.init(data: #"{"choices":[{"delta":{"role":"assistant"}}]}"#)
        case .content: self.init(data: #"{"choices":[{"delta":{"content":"x"}}]}"#)
        case .finish: self.init(data: #"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#)
        case .usageOnly: self.init(data: #"{"choices":[],"usage":{}}"#)
        case .error: self.init(data: #"{"error":{}}"#)
        case .notAChunk: self.init(data: "x")
        case .done: self.init(data: "[DONE]")
        case .noData: self.init(ByteBuffer(string: ": ping\n\n"))
        }
    }
}
