import NIOCore
import Testing

@testable import FleetGate

@Suite("SSE relay: n > 1 and max_tokens")
struct SSERelayChoicesTests {

    /// vLLM streams `n: 2` as one choice per chunk; `max_tokens` is each choice's (helper-112).
    static func choice(_ index: Int, _ text: String, finish: String? = nil) -> String {
        let reason = finish.map { "\"\($0)\"" } ?? "null"
        return
            #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":\#(index),"delta":{"content":"\#(text)"},"finish_reason":\#(reason)}]}"#
            + "\n\n"
    }

    @Test("With n: 2, max_tokens bounds each choice: both get their tokens; at the bound each unfinished choice ends")
    func maxTokensPerChoice() {
        var whole = RelayDriver(maxTokens: 2, choices: 2)
        let answer =
            Self.choice(0, "a0") + Self.choice(1, "b0") + Self.choice(0, "a1") + Self.choice(1, "b1")
            + Self.choice(0, "", finish: "length") + Self.choice(1, "", finish: "length") + "data: [DONE]\n\n"
        #expect(!whole.feed(answer, from: 1).contains(.overLimit))
        #expect(whole.client.contains("a1") && whole.client.contains("b1"), "\(whole.client)")
        // An upstream that runs on past both choices' tokens is stopped, and each choice gets its end.
        var runaway = RelayDriver(maxTokens: 1, choices: 2)
        let kinds = runaway.feed(Self.choice(0, "a0") + Self.choice(1, "b0") + Self.choice(0, "a1"), from: 1)
        #expect(kinds.last == .overLimit)
        runaway.relay.finishOverLimit(into: &runaway.out)
        runaway.relay.finishStream(into: &runaway.out)
        #expect(runaway.client.contains(#""index":0,"delta":{},"finish_reason":"length""#), "\(runaway.client)")
        #expect(runaway.client.contains(#""index":1,"delta":{},"finish_reason":"length""#), "\(runaway.client)")
        #expect(!runaway.client.contains("a1") && runaway.relay.deliveredFinish)
    }
}
