import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

/// Drives an ``SSERelay`` the way the dispatcher does, with plain bytes.
struct RelayDriver {
    var relay: SSERelay
    var out = ByteBuffer()
    var committed: Int?
    var opened: Set<Int> = []
    /// Whether plain tokens of the committed attempt go through ``SSERelay/forwardTokens(from:into:)``
    /// first, as the dispatcher does; each counts as an `.output` kind.
    var passThrough = false
    /// Tokens the pass-through forwarded.
    var passedThrough = 0
    /// Output after the answer's finish reason, dropped.
    var droppedAfterFinish = 0

    init(
        streaming: Bool = true, usage: Bool = false, chat: Bool = true, maxTokens: Int? = nil,
        maxAggregateBytes: Int = 4 << 20, passThrough: Bool = false, choices: Int = 1, promptTokenBound: Int = .max,
        estimatedPromptTokens: Int = 0
    ) {
        self.passThrough = passThrough
        var configuration = SSERelay.Configuration(
            streaming: streaming, includeUsage: usage, chat: chat, maxOutputTokens: maxTokens,
            maxAggregateBytes: maxAggregateBytes, fallbackID: "chatcmpl-fallback")
        configuration.choices = choices
        configuration.promptTokenBound = promptTokenBound
        configuration.estimatedPromptTokens = estimatedPromptTokens
        self.relay = SSERelay(configuration: configuration)
    }

    /// Feeds bytes from an attempt; returns the kinds seen.
    mutating func feed(_ text: String, from attempt: Int) -> [SSERelay.Kind] {
        if self.opened.insert(attempt).inserted { self.relay.open(attempt: attempt) }
        var kinds: [SSERelay.Kind] = []
        self.relay.append(ByteBuffer(string: text), from: attempt)
        while true {
            if self.passThrough && self.committed == attempt {
                let count = self.relay.forwardTokens(from: attempt, into: &self.out)
                kinds.append(contentsOf: Array(repeating: .output, count: count))
                self.passedThrough += count
            }
            guard let item = self.relay.next(from: attempt) else { break }
            kinds.append(item.kind)
            switch item.kind {
            case .preamble where self.committed != attempt: self.relay.hold(item, from: attempt)
            case .output:
                if self.committed == attempt && self.relay.isAfterFinish(item) {
                    self.droppedAfterFinish += 1  // as the dispatcher drops it
                    continue
                }
                if self.relay.wouldExceedLimits(item) {
                    kinds.append(.overLimit)
                    continue
                }
                if self.committed != attempt {
                    self.committed = attempt
                    self.relay.commit(attempt, first: item, into: &self.out)
                } else {
                    self.relay.deliver(item, from: attempt, into: &self.out)
                }
            default: break
            }
        }
        return kinds
    }

    var client: String { String(buffer: self.out) }

    /// The JSON payloads the client received, decoded.
    var clientChunks: [[String: Any]] {
        self.client.components(separatedBy: "\n\n").compactMap { event in
            guard event.hasPrefix("data: "), !event.hasSuffix("[DONE]") else { return nil }
            // Its data lines joined with a LF, as an SSE client joins them.
            let data = event.split(separator: "\n").map { $0.dropFirst(6) }.joined(separator: "\n")
            return try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]
        }
    }
}

func chunk(_ id: String, content: String? = nil, role: Bool = false, finish: String? = nil, spaced: Bool = false)
    -> String
{
    var delta: [String] = []
    if role { delta.append("\"role\":\"assistant\"") }
    if let content { delta.append("\"content\":\(String(data: try! JSONEncoder().encode(content), encoding: .utf8)!)") }
    let finishJSON = finish.map { "\"\($0)\"" } ?? "null"
    var json =
        "{\"id\":\"\(id)\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\(delta.joined(separator: ","))},\"finish_reason\":\(finishJSON)}]}"
    if spaced {
        // Python's json.dumps: a space after ':' and ','.
        json = json.replacingOccurrences(of: "\":", with: "\": ").replacingOccurrences(of: ",\"", with: ", \"")
    }
    return "data: \(json)\n\n"
}

/// A chat chunk whose choices' contents are the raw JSON string tokens `tokens` (index 0, 1, …), as
/// written: escapes as the upstream chose them.
func rawChunk(_ id: String, _ tokens: String..., finish: String? = nil) -> String {
    let choices = tokens.enumerated().map { index, token in
        "{\"index\":\(index),\"delta\":{\"content\":\(token)},\"finish_reason\":\(finish.map { "\"\($0)\"" } ?? "null")}"
    }
    return "data: {\"id\":\"\(id)\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":["
        + choices.joined(separator: ",") + "]}\n\n"
}

let usageChunk =
    "data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n"

@Suite("SSERelay")
struct SSERelayTests {
    @Test("Python-style spacing is parsed: the first token is recognised and its text kept")
    func spacedJSON() {
        var d = RelayDriver()
        #expect(d.feed(chunk("a", role: true, spaced: true), from: 1) == [.preamble])
        #expect(d.feed(chunk("a", content: "Hello", spaced: true), from: 1) == [.output])
        #expect(d.relay.deliveredText == "Hello")
        #expect(d.relay.deliveredTokens == 1)
        #expect(d.clientChunks.count == 2)  // the held role chunk, then the token
    }

    @Test("Forged SSE fields never reach the client; only data lines do")
    func forgedFields() {
        var d = RelayDriver()
        _ = d.feed("event: hijack\nid: 99\nretry: 1\n: comment\n" + chunk("a", content: "x"), from: 1)
        #expect(d.relay.deliveredTokens == 1)
        #expect(!d.client.contains("event:"))
        #expect(!d.client.contains("retry:"))
        #expect(!d.client.contains("id: 99"))
        #expect(d.client.hasPrefix("data: {"))
    }

    /// Fuzzer finding (issue #20): a chunk sent as several `data:` lines (legal SSE; JSON whitespace
    /// between them) was re-emitted as one `data:` line with a raw newline inside — a broken event.
    @Test("A chunk split over several data lines reaches the client as well-formed SSE")
    func multiLineData() throws {
        var d = RelayDriver()
        let kinds = d.feed(
            "data: {\"id\":\"a\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\n"
                + "data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n",
            from: 1)
        #expect(kinds == [.output])
        #expect(d.relay.deliveredTokens == 1)
        for line in d.client.split(separator: "\n", omittingEmptySubsequences: true) {
            #expect(line.hasPrefix("data: "), "a line of the client's stream is not a data line: \(line)")
        }
        var decoder = SSE.Decoder()
        let events = try decoder.feed(ByteBuffer(string: d.client))
        let payload = try #require(events.first?.payload)
        #expect(try ChunkScanner.scan(payload, range: 0..<payload.readableBytes).choice?.content == "x")
    }

    @Test("A forged error payload is an upstream failure, not client output")
    func forgedError() {
        var d = RelayDriver()
        let kinds = d.feed("data: {\"error\":{\"message\":\"pwned\",\"type\":\"x\"}}\n\n", from: 1)
        #expect(kinds == [.upstreamError])
        #expect(d.client.isEmpty)
    }

    @Test("Data after [DONE] is dropped")
    func dataAfterDone() {
        var d = RelayDriver()
        let kinds = d.feed(chunk("a", content: "x") + "data: [DONE]\n\n" + chunk("a", content: "late"), from: 1)
        #expect(kinds == [.output, .done])
        #expect(d.feed(chunk("a", content: "later"), from: 1).isEmpty)
        #expect(d.relay.deliveredText == "x")
    }

    @Test(
        "Malformed payloads are refused",
        arguments: [
            "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],}\n\n",  // trailing comma
            "data: {\"id\":\"a\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]\n\n",  // unterminated
            "data: {\"id\":\"a\"}\n\n",  // no choices
            "data: [1,2]\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":\"\\ud800\\u12\"}}]}\n\n",  // bad escape
        ])
    func malformed(payload: String) {
        var d = RelayDriver()
        let kinds = d.feed(payload, from: 1)
        #expect(kinds.count == 1)
        if case .malformed = kinds.first! {} else { Issue.record("expected malformed, got \(kinds)") }
        #expect(d.client.isEmpty)
    }

    /// helper-72: a hostile car answered an n = 1 request with a choice at index 5, which a `stream: false`
    /// client got as a second choice and a streamed one as a chunk.
    @Test(
        "A choice the client did not ask for is an upstream fault, streamed or whole, with or without pass-through",
        arguments: [false, true])
    func choiceOutOfRange(passThrough: Bool) {
        for streaming in [true, false] {
            var d = RelayDriver(streaming: streaming, passThrough: passThrough)
            let first =
                "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n"
            #expect(d.feed(first, from: 1) == [.output])
            let extra =
                "data: {\"id\":\"a\",\"choices\":[{\"index\":5,\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}]}\n\n"
            #expect(d.feed(extra, from: 1) == [.malformed(label: "bad_choice_index")], "streaming \(streaming)")
            #expect(!String(buffer: d.out).contains("\"y\""))
        }
    }

    @Test("Invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        var d = RelayDriver()
        d.relay.open(attempt: 1)
        var bytes = ByteBuffer(string: "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"")
        bytes.writeBytes([0xC3, 0x28])  // an invalid two-byte sequence
        bytes.writeString("\"},\"finish_reason\":null}]}\n\n")
        let items = d.relay.receive(bytes, from: 1)
        #expect(items.map(\.kind) == [.malformed(label: "bad_json")])
    }

    @Test("An event larger than the bound is refused without buffering more")
    func eventTooLarge() {
        var relay = SSERelay(
            configuration: .init(
                streaming: true, includeUsage: false, chat: true, maxOutputTokens: nil, maxEventBytes: 1024,
                fallbackID: "x"))
        relay.open(attempt: 1)
        let items = relay.receive(ByteBuffer(string: "data: {\"a\":\"" + String(repeating: "x", count: 4096)), from: 1)
        #expect(items.map(\.kind) == [.malformed(label: "event_too_large")])
        #expect(relay.receive(ByteBuffer(string: "\"}\n\n"), from: 1).isEmpty)
    }

    @Test("An upstream whose SSE lines end in CRLF (sse-starlette) is relayed, as LF events")
    func crlfUpstream() {
        for passThrough in [false, true] {
            var d = RelayDriver(passThrough: passThrough)
            let crlf = { (event: String) in event.replacingOccurrences(of: "\n", with: "\r\n") }
            let kinds = d.feed(
                crlf(chunk("s", role: true)) + crlf(chunk("s", content: "Hel")) + crlf(chunk("s", content: "lo"))
                    + crlf(chunk("s", finish: "stop")) + "data: [DONE]\r\n\r\n", from: 1)
            #expect(kinds == [.preamble, .output, .output, .output, .done])
            #expect(d.relay.deliveredText == "Hello")
            #expect(!d.client.contains("\r"))
            #expect(d.clientChunks.count == 4)
        }
    }

    /// A review finding: a CR is JSON whitespace to the scanner, but a line end to an SSE client
    /// (EventSource, the openai SDK), which then read a truncated chunk.
    @Test("A carriage return in a chunk's JSON whitespace never reaches the client inside a data line")
    func loneCarriageReturn() {
        for passThrough in [false, true] {
            var d = RelayDriver(passThrough: passThrough)
            let odd =
                "data: {\"id\":\"s\",\"object\":\"chat.completion.chunk\",\"created\":7,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\r\"finish_reason\":null}]}\n\n"
            _ = d.feed(chunk("s", role: true) + chunk("s", content: "a") + odd + chunk("s", content: "c"), from: 1)
            #expect(d.relay.deliveredText == "abc")
            #expect(!d.client.contains("\r"))
            // The client joins the event's data lines with a LF: whitespace again, the same JSON.
            #expect(d.clientChunks.count == 4)
        }
    }

    @Test("Items are read one at a time; the relay says whether more of the read is buffered")
    func pullOneAtATime() {
        var relay = SSERelay(
            configuration: .init(
                streaming: true, includeUsage: false, chat: true, maxOutputTokens: nil, fallbackID: "x"))
        relay.open(attempt: 1)
        #expect(!relay.hasBufferedBytes(from: 1))
        relay.append(
            ByteBuffer(string: chunk("a", content: "one") + chunk("a", content: "two") + "data: {\"id"), from: 1)
        #expect(relay.next(from: 1)?.chunk?.choice?.contentToken != nil)
        #expect(relay.hasBufferedBytes(from: 1))
        #expect(relay.next(from: 1)?.kind == .output)
        #expect(relay.hasBufferedBytes(from: 1))  // the start of the next event
        #expect(relay.next(from: 1) == nil)
        relay.append(ByteBuffer(string: "\":\"a\"}\n\ndata: [DONE]\n\n"), from: 1)  // no choices
        #expect(relay.next(from: 1)?.kind == .malformed(label: "bad_chunk"))
        #expect(!relay.hasBufferedBytes(from: 1))  // ended: the rest is never read
        #expect(relay.next(from: 1) == nil)
        relay.append(ByteBuffer(string: chunk("a", content: "late")), from: 1)
        #expect(relay.next(from: 1) == nil)
        #expect(relay.next(from: 2) == nil)  // no such attempt
    }

    @Test("One id from the first chunk to the end, across a continuation from another upstream")
    func identityAcrossAttempts() {
        var d = RelayDriver()
        _ = d.feed(chunk("first", role: true) + chunk("first", content: "a "), from: 1)
        _ = d.feed(
            chunk("second", role: true) + chunk("second", content: "b ") + chunk("second", finish: "stop"), from: 2)
        d.relay.finishStream(into: &d.out)
        let ids = Set(d.clientChunks.compactMap { $0["id"] as? String })
        #expect(ids == ["first"])
        #expect(d.relay.deliveredText == "a b ")
        // One role chunk only: the continuation's is not repeated.
        let roles = d.client.components(separatedBy: "\"role\"").count - 1
        #expect(roles == 1)
        #expect(d.client.hasSuffix("data: [DONE]\n\n"))
        #expect(d.client.components(separatedBy: "[DONE]").count == 2)
    }

    @Test("Usage is stripped unless asked for, and then reported once at the end")
    func usage() {
        var plain = RelayDriver()
        _ = plain.feed(chunk("a", content: "x ") + chunk("a", content: "y ") + usageChunk, from: 1)
        plain.relay.finishStream(into: &plain.out)
        #expect(!plain.client.contains("usage"))

        var asked = RelayDriver(usage: true)
        _ = asked.feed(chunk("a", content: "x ") + chunk("a", content: "y ") + usageChunk, from: 1)
        asked.relay.finishStream(into: &asked.out)
        let usages = asked.clientChunks.compactMap { $0["usage"] as? [String: Int] }
        #expect(usages == [["prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7]])
    }

    @Test("Output past max_tokens is over the limit")
    func maxTokens() {
        var d = RelayDriver(maxTokens: 2)
        let kinds = d.feed(chunk("a", content: "1") + chunk("a", content: "2") + chunk("a", content: "3"), from: 1)
        #expect(kinds == [.output, .output, .output, .overLimit])
        #expect(d.relay.deliveredTokens == 2)
    }

    @Test("A stream:false aggregate is bounded in bytes")
    func aggregateBound() {
        var d = RelayDriver(streaming: false, maxAggregateBytes: 10)
        let kinds = d.feed(String(repeating: chunk("a", content: "0123456789"), count: 3), from: 1)
        #expect(kinds.filter { $0 == .overLimit }.count == 2)
        #expect(d.relay.response(model: "m").choices[0].message?.content == "0123456789")
        #expect(d.client.isEmpty)
    }

    /// A stream with no `max_tokens` was bounded only by its events (200,000 × 64 KiB), and the relay
    /// keeps a stream's text for its continuations.
    @Test(
        "A stream's held text is bounded in bytes too: it ends as the output limit ends it", arguments: [false, true])
    func streamedTextBound(passThrough: Bool) {
        var d = RelayDriver(maxAggregateBytes: 25, passThrough: passThrough)
        let kinds = d.feed(String(repeating: chunk("a", content: "0123456789"), count: 4), from: 1)
        #expect(kinds.filter { $0 == .overLimit }.count >= 1, "\(kinds)")
        #expect(d.relay.deliveredText == "012345678901234567890123456789")
    }

    @Test("The stream:false answer carries the upstream's id and counted usage")
    func nonStreamed() {
        var d = RelayDriver(streaming: false)
        _ = d.feed(
            chunk("cmpl-1", role: true) + chunk("cmpl-1", content: "hi ") + chunk("cmpl-1", finish: "length"), from: 1)
        let response = d.relay.response(model: "m")
        #expect(response.id == "cmpl-1")
        #expect(response.choices[0].message?.content == "hi ")
        #expect(response.choices[0].finishReason == "length")
        #expect(response.usage.completionTokens == 1)
    }

    /// The delivered text is kept as the pieces' string tokens and decoded when read (issue #11
    /// item 6): it must read exactly as when each piece was decoded on arrival.
    static let pieces = [
        #""Hi""#, #"" \"q\"""#, #""\n""#, #""caf\u00e9""#, #""\ud83d\ude97""#, #""a\/b\\""#, #""\u0000""#,
    ]
    static let piecesText = "Hi \"q\"\ncafé🚗a/b\\\u{00}"

    @Test("Escaped pieces: the delivered text and the client's chunks read as the old path's text")
    func escapedPieces() {
        var d = RelayDriver()
        _ = d.feed(chunk("a", role: true) + Self.pieces.map { rawChunk("a", $0) }.joined(), from: 1)
        #expect(d.relay.deliveredText == Self.piecesText)
        #expect(d.relay.deliveredTokens == Self.pieces.count)
        let contents = d.clientChunks.compactMap { chunk in
            ((chunk["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any])?["content"] as? String
        }
        #expect(contents.joined() == Self.piecesText)
    }

    @Test("A surrogate pair split over two pieces is two U+FFFD in the delivered text, as before")
    func splitSurrogatePair() {
        var d = RelayDriver()
        _ = d.feed(rawChunk("a", #""\ud83d""#) + rawChunk("a", #""\ude97""#) + rawChunk("a", #""!""#), from: 1)
        #expect(d.relay.deliveredText == "\u{FFFD}\u{FFFD}!")
        #expect(d.relay.deliveredTokens == 3)
    }

    @Test("A continuation's body carries the delivered text, decoded, as the old path's text")
    func continuationText() throws {
        var d = RelayDriver()
        _ = d.feed(Self.pieces.map { rawChunk("a", $0) }.joined(), from: 1)
        let body = ByteBuffer(string: #"{"model":"m","max_tokens":20,"messages":[{"role":"user","content":"go"}]}"#)
        let continued = try #require(
            JSONBody.continuation(of: body, text: d.relay.deliveredText, delivered: d.relay.deliveredTokens))
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(continued.readableBytesView)) as? [String: Any])
        let messages = try #require(json["messages"] as? [[String: String]])
        #expect(messages.last == ["role": "assistant", "content": Self.piecesText])
        #expect(json["max_tokens"] as? Int == 20 - Self.pieces.count)
    }

    @Test("A rewritten chunk (another upstream's id) carries each token as it came, under the stream's id")
    func rewrittenTokens() {
        for chat in [true, false] {
            var d = RelayDriver(chat: chat)
            let first = chat ? rawChunk("first", #""x""#) : legacyChunk("first", #""x""#)
            _ = d.feed(first, from: 1)
            d.committed = nil  // failover: attempt 2 continues, under its own id
            for piece in Self.pieces {
                _ = d.feed(chat ? rawChunk("second", piece) : legacyChunk("second", piece), from: 2)
            }
            for piece in Self.pieces {
                // The token's bytes as the upstream wrote them, as a pass-through chunk carries them.
                #expect(d.client.contains((chat ? "\"content\":" : "\"text\":") + piece), "\(chat) \(piece)")
            }
            #expect(!d.client.contains("\"second\""))
            #expect(d.clientChunks.allSatisfy { $0["id"] as? String == "first" })
            #expect(d.relay.deliveredText == "x" + Self.piecesText)
        }
    }

    @Test(
        "A chunk written anew keeps every member but the identity: tool calls, logprobs, reasoning, fingerprint",
        arguments: [false, true])
    func rewrittenKeepsFields(usage: Bool) throws {
        var d = RelayDriver(usage: usage)
        _ = d.feed(chunk("first", content: "x"), from: 1)
        let toolCall =
            #"{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}}"#
        // Another id, usage the client may not have asked for, and fields the relay does not read.
        let payloads = [
            #"{"id":"other","object":"chat.completion.chunk","created":9,"model":"n","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"reasoning_content":"think","content":"y"},"logprobs":{"content":[{"token":"y","logprob":-0.5}]},"finish_reason":null}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":["# + toolCall + #"]},"finish_reason":"tool_calls"}]}"#,
        ]
        for payload in payloads { _ = d.feed("data: \(payload)\n\n", from: 1) }
        let chunks = d.clientChunks
        try #require(chunks.count == 3)
        Self.expectIdentity(chunks, id: "first", model: "m", created: 7)
        #expect(chunks[1]["system_fingerprint"] as? String == "fp_1")
        // Usage on a text chunk never passes, asked for or not: the client's counts are the closing
        // chunk's, bounded by the gateway (helper-76).
        #expect(chunks[1]["usage"] == nil)
        let choice = try #require((chunks[1]["choices"] as? [[String: Any]])?.first)
        let delta = try #require(choice["delta"] as? [String: Any])
        #expect(delta["reasoning_content"] as? String == "think")
        #expect(delta["content"] as? String == "y")
        #expect(((choice["logprobs"] as? [String: Any])?["content"] as? [Any])?.count == 1)
        let last = try #require((chunks[2]["choices"] as? [[String: Any]])?.first)
        let calls = try #require((last["delta"] as? [String: Any])?["tool_calls"] as? [[String: Any]])
        #expect(calls.first?["id"] as? String == "call_1")
        #expect((calls.first?["function"] as? [String: Any])?["arguments"] as? String == #"{"city":"Oslo"}"#)
        #expect(last["finish_reason"] as? String == "tool_calls")
    }

    @Test("An upstream without id, model or created: the stream's chunks carry the request's id, model and start")
    func identityFallback() throws {
        var d = RelayDriver()
        d.relay = SSERelay(
            configuration: .init(
                streaming: true, includeUsage: false, chat: true, maxOutputTokens: nil, fallbackID: "chatcmpl-r1",
                fallbackModel: "fleet-8b", fallbackCreated: 1_796_356_412))
        _ = d.feed(#"data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"# + "\n\n", from: 1)
        _ = d.feed(#"data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}"# + "\n\n", from: 1)
        let chunks = d.clientChunks
        try #require(chunks.count == 2)
        Self.expectIdentity(chunks, id: "chatcmpl-r1", model: "fleet-8b", created: 1_796_356_412)
    }

    /// Every chunk carries the stream's one identity.
    static func expectIdentity(
        _ chunks: [[String: Any]], id: String, model: String, created: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        for chunk in chunks {
            #expect(chunk["id"] as? String == id, sourceLocation: sourceLocation)
            #expect(chunk["model"] as? String == model, sourceLocation: sourceLocation)
            #expect(chunk["created"] as? Int == created, sourceLocation: sourceLocation)
            #expect(chunk["object"] as? String == "chat.completion.chunk", sourceLocation: sourceLocation)
        }
    }

    @Test("[DONE] with spaces or tabs around it ends the stream; anything else beside it does not")
    func doneVariants() {
        for done in ["[DONE]", " [DONE]", "[DONE] ", "\t[DONE]\t ", "  [DONE]"] {
            #expect(SSE.isDone(ByteBuffer(string: done)), "\(done)")
        }
        for other in ["[DONE]x", "[DONE", "[done]", "\"[DONE]\"", "", "      ", "[DONE]\n[DONE]"] {
            #expect(!SSE.isDone(ByteBuffer(string: other)), "\(other)")
        }
        var d = RelayDriver()
        let kinds = d.feed(chunk("a", content: "x", finish: "stop") + "data:  [DONE]\n\n", from: 1)
        #expect(kinds == [.output, .done])
    }

    @Test("A chunk of the other API's shape fails the attempt; a choice with neither delta nor text does not")
    func otherShape() {
        var chat = RelayDriver()
        #expect(chat.feed(legacyChunk("a", #""x""#), from: 1) == [.malformed(label: "wrong_shape")])
        var legacy = RelayDriver(chat: false)
        #expect(legacy.feed(rawChunk("a", #""x""#), from: 1) == [.malformed(label: "wrong_shape")])
        var finishOnly = RelayDriver()
        let finish = #"data: {"id":"a","choices":[{"index":0,"finish_reason":"stop"}]}"# + "\n\n"
        #expect(finishOnly.feed(rawChunk("a", #""x""#) + finish, from: 1) == [.output, .output])
        var right = RelayDriver(chat: false)
        #expect(right.feed(legacyChunk("a", #""x""#), from: 1) == [.output])
    }

    @Test(
        "Text after the answer's finish reason is dropped, passed through or not; another choice's is not",
        arguments: [false, true])
    func afterFinish(passThrough: Bool) {
        var d = RelayDriver(passThrough: passThrough)
        let kinds = d.feed(
            chunk("a", role: true) + rawChunk("a", #""one""#) + rawChunk("a", #"" two""#, finish: "stop")
                + rawChunk("a", #"" extra""#) + rawChunk("a", #"" more""#) + "data: [DONE]\n\n", from: 1)
        #expect(d.droppedAfterFinish == 2, "\(kinds)")
        #expect(d.relay.deliveredText == "one two")
        #expect(!d.client.contains("extra") && !d.client.contains("more"))
        // n = 2: choice 0 finished, choice 1 goes on.
        var n2 = RelayDriver(choices: 2)
        _ = n2.feed(rawChunk("a", #""x""#, #""y""#), from: 1)
        _ = n2.feed(rawChunk("a", #""""#, finish: "stop"), from: 1)
        let later = n2.feed(
            #"data: {"id":"a","choices":[{"index":1,"delta":{"content":"z"},"finish_reason":null}]}"# + "\n\n", from: 1)
        #expect(later == [.output])
    }

    @Test(
        "Reasoning deltas are output: every one reaches the client, before and after the text, passed through or not",
        arguments: [false, true])
    func reasoningDeltas(passThrough: Bool) throws {
        var d = RelayDriver(passThrough: passThrough)
        func delta(_ members: String, finish: String? = nil) -> String {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return
                #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"#
                + members + #"},"finish_reason":"# + reason + "}]}\n\n"
        }
        var stream = delta(#""role":"assistant","content":"""#)
        for step in 1...6 { stream += delta(#""reasoning_content":"r\#(step) ""#) }
        stream += delta(#""content":"one""#) + delta(#""reasoning_content":"late""#) + delta(#""content":" two""#)
        stream += delta(#""reasoning_content":null,"refusal":null,"content":"""#, finish: "stop") + "data: [DONE]\n\n"
        _ = d.feed(stream, from: 1)
        let reasoning = d.clientChunks.compactMap { chunk -> String? in
            let choice = (chunk["choices"] as? [[String: Any]])?.first
            return (choice?["delta"] as? [String: Any])?["reasoning_content"] as? String
        }
        #expect(reasoning == ["r1 ", "r2 ", "r3 ", "r4 ", "r5 ", "r6 ", "late"])
        #expect(d.relay.deliveredText == "one two")
        #expect(d.relay.deliveredTokens == 9)  // each reasoning delta and each text token
    }

    @Test("One upstream's usage chunk reaches the client with every member; after a continuation, the summed counts")
    func usageChunkKept() throws {
        var d = RelayDriver(usage: true)
        let usage =
            #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp_9","service_tier":"default","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens_details":{"reasoning_tokens":1}}}"#
            + "\n\n"
        _ = d.feed(rawChunk("a", #""x""#) + rawChunk("a", #""y""#, finish: "stop") + usage, from: 1)
        d.relay.finishStream(into: &d.out)
        let last = try #require(d.clientChunks.last)
        #expect(last["system_fingerprint"] as? String == "fp_9")
        #expect(last["service_tier"] as? String == "default")
        let details = (last["usage"] as? [String: Any])?["prompt_tokens_details"] as? [String: Any]
        #expect(details?["cached_tokens"] as? Int == 2)
        #expect((last["choices"] as? [Any])?.isEmpty == true)
        #expect(d.client.hasSuffix("data: [DONE]\n\n"))

        // Two segments: the counts are summed, so the chunk is the gateway's.
        var moved = RelayDriver(usage: true)
        _ = moved.feed(
            rawChunk("a", #""x""#)
                + usage.replacingOccurrences(of: #""completion_tokens":2"#, with: #""completion_tokens":1"#), from: 1)
        moved.committed = nil
        _ = moved.feed(
            rawChunk("b", #""y""#, finish: "stop") + usage.replacingOccurrences(of: "\"a\"", with: "\"b\""), from: 2)
        moved.relay.finishStream(into: &moved.out)
        let summed = try #require(moved.clientChunks.last?["usage"] as? [String: Any])
        #expect(summed["completion_tokens"] as? Int == 3)
    }

    @Test("stream:false: each choice's text from escaped pieces, as before")
    func nonStreamedEscapes() {
        var d = RelayDriver(streaming: false, choices: 2)
        _ = d.feed(
            rawChunk("a", #""caf\u00e9""#, #""\"one\"""#) + rawChunk("a", #""\n🚗""#, #""\t""#)
                + rawChunk("a", #""""#, #""""#, finish: "stop"), from: 1)
        let response = d.relay.response(model: "m")
        #expect(response.choices.map(\.message?.content) == ["café\n🚗", "\"one\"\t"])
        #expect(response.choices.map(\.finishReason) == ["stop", "stop"])
        #expect(d.client.isEmpty)
    }

    @Test("With n > 1 the answer is finished when every choice is, not at the first choice's finish")
    func finishedWithSeveralChoices() {
        var d = RelayDriver(streaming: true)
        d.relay = SSERelay(
            configuration: .init(
                streaming: true, includeUsage: false, chat: true, maxOutputTokens: nil, fallbackID: "x", choices: 2))
        _ = d.feed(rawChunk("a", #""one""#, #""uno""#), from: 1)
        _ = d.feed(
            #"data: {"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n", from: 1)
        #expect(!d.relay.deliveredFinish, "choice 1 has not finished")
        _ = d.feed(
            #"data: {"id":"a","choices":[{"index":1,"delta":{},"finish_reason":"stop"}]}"# + "\n\n", from: 1)
        #expect(d.relay.deliveredFinish)
    }

    @Test("max_tokens bounds thinking as it bounds text: both are output, counted and billed")
    func reasoningBound() {
        func thinking(_ text: String) -> String {
            #"data: {"id":"a","choices":[{"index":0,"delta":{"reasoning_content":"\#(text)"},"finish_reason":null}]}"#
                + "\n\n"
        }
        for streaming in [true, false] {
            var d = RelayDriver(streaming: streaming, maxTokens: 2)
            let kinds = d.feed(thinking("a") + thinking("b") + thinking("c") + chunk("a", content: "x"), from: 1)
            #expect(kinds == [.output, .output, .output, .overLimit, .output, .overLimit], "\(streaming)")
            #expect(d.relay.deliveredTokens == 2)
        }
    }

    @Test("stream:false restarted: the lost answer's text, finish, usage and id are dropped; a stream's are kept")
    func restart() {
        var d = RelayDriver(streaming: false, usage: true)
        // The lost answer got as far as its finish and usage (the upstream was lost before `[DONE]`).
        _ = d.feed(
            chunk("lost", content: "Let me") + chunk("lost", content: " look.") + chunk("lost", finish: "length")
                + #"data: {"id":"lost","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"# + "\n\n",
            from: 1)
        d.relay.restart()
        d.committed = nil
        _ = d.feed(chunk("new", content: "Hi") + chunk("new", finish: "stop"), from: 2)
        let response = d.relay.response(model: "m")
        #expect(response.id == "new")
        #expect(response.choices.map(\.message?.content) == ["Hi"])
        #expect(response.choices.map(\.finishReason) == ["stop"])
        #expect(response.usage.completionTokens == 1 && response.usage.promptTokens == 0)
        #expect(d.client.isEmpty)
        // A streamed answer's client heard it: nothing is forgotten.
        var streamed = RelayDriver(streaming: true)
        _ = streamed.feed(chunk("a", content: "one"), from: 1)
        streamed.relay.restart()
        #expect(streamed.relay.deliveredText == "one" && streamed.relay.deliveredTokens == 1)
    }

    @Test("prompt_tokens after a continuation: the app's prompt, not the delivered text it repeats, nor 0")
    func promptTokensAfterContinuation() {
        // The first upstream is lost after two tokens, before its usage; the second continues from
        // the delivered text (a prefix continuation), which its prompt count includes.
        var d = RelayDriver(streaming: false, usage: true)
        _ = d.feed(chunk("a", content: "one") + chunk("a", content: " two"), from: 1)
        d.relay.open(attempt: 2, repeating: 2)
        d.opened.insert(2)
        d.committed = nil
        _ = d.feed(
            chunk("b", content: " three") + chunk("b", finish: "stop")
                + #"data: {"id":"b","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":1}}"# + "\n\n",
            from: 2)
        #expect(d.relay.usage.promptTokens == 9)
        #expect(d.relay.usage.completionTokens == 3)
        // Nobody reported one: the gateway's estimate, which the dispatcher passes in.
        var estimated = RelayDriver(streaming: false, usage: true)
        estimated.relay = SSERelay(
            configuration: .init(
                streaming: false, includeUsage: true, chat: true, maxOutputTokens: nil, fallbackID: "x",
                estimatedPromptTokens: 7))
        _ = estimated.feed(chunk("a", content: "one") + chunk("a", finish: "stop"), from: 1)
        #expect(estimated.relay.usage.promptTokens == 7)
    }

    @Test("The stream:false bound counts the text as JSON escapes it: what the relay holds")
    func aggregateBoundCountsEscapes() {
        // "\n" five times: 10 bytes held, 5 bytes of text; the bound (10) is reached after one piece.
        var d = RelayDriver(streaming: false, maxAggregateBytes: 10)
        let kinds = d.feed(String(repeating: rawChunk("a", #""\n\n\n\n\n""#), count: 2), from: 1)
        #expect(kinds == [.output, .output, .overLimit])
        #expect(d.relay.response(model: "m").choices[0].message?.content == "\n\n\n\n\n")
    }
}

/// A legacy completions chunk whose `text` is the raw JSON string token `token`.
func legacyChunk(_ id: String, _ token: String) -> String {
    "data: {\"id\":\"\(id)\",\"object\":\"text_completion\",\"created\":7,\"model\":\"m\",\"choices\":[{\"text\":\(token),\"index\":0,\"finish_reason\":null}]}\n\n"
}
