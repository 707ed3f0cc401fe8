import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

/// helper-72: a car's `usage` reached the client as the car said it, so a car could bill an app for
/// a million tokens it never generated.
@Suite("Reported usage is bounded by the request")
struct SSERelayUsageBoundsTests {
    static func usage(prompt: Int, completion: Int, cached: Int = 0, reasoning: Int = 0) -> String {
        #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":\#(prompt),"completion_tokens":\#(completion),"total_tokens":\#(prompt + completion),"prompt_tokens_details":{"cached_tokens":\#(cached)},"completion_tokens_details":{"reasoning_tokens":\#(reasoning)}}}"#
            + "\n\n"
    }

    @Test("Counts within the bounds pass byte for byte; none is implausible")
    func honest() throws {
        var d = RelayDriver(usage: true, maxTokens: 4, promptTokenBound: 600)
        _ = d.feed(
            rawChunk("a", #""x""#) + rawChunk("a", #""y""#, finish: "stop") + Self.usage(prompt: 600, completion: 4),
            from: 1)
        d.relay.finishStream(into: &d.out)
        #expect(d.relay.implausibleUsage == nil)
        let usage = try #require(d.clientChunks.last?["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 600)
        #expect(usage["completion_tokens"] as? Int == 4)
    }

    @Test(
        "A streamed usage chunk past max_tokens × n or the prompt's bound reaches the client bounded",
        arguments: [1, 2])
    func streamed(choices: Int) throws {
        var d = RelayDriver(usage: true, maxTokens: 8, choices: choices, promptTokenBound: 600)
        let finish =
            choices == 1 ? rawChunk("a", #""y""#, finish: "stop") : rawChunk("a", #""y""#, #""z""#, finish: "stop")
        _ = d.feed(
            rawChunk("a", #""x""#) + finish
                + Self.usage(prompt: 90_000, completion: 1_000_000, cached: 80_000, reasoning: 999_999), from: 1)
        d.relay.finishStream(into: &d.out)
        #expect(d.relay.implausibleUsage?.completionTokens == 1_000_000)
        let usage = try #require(d.clientChunks.last?["usage"] as? [String: Any])
        #expect(usage["prompt_tokens"] as? Int == 600)
        #expect(usage["completion_tokens"] as? Int == 8 * choices)
        #expect(usage["total_tokens"] as? Int == 600 + 8 * choices)
    }

    /// helper-80: a negative count was read as 0, and the client was charged nothing.
    @Test("Negative counts are no counts: the relay's own count stands in, as when usage is missing")
    func negativeCounts() throws {
        var d = RelayDriver(usage: true, maxTokens: 8, promptTokenBound: 600, estimatedPromptTokens: 7)
        _ = d.feed(
            rawChunk("a", #""x""#) + rawChunk("a", #""y""#, finish: "stop") + Self.usage(prompt: -5, completion: -100),
            from: 1)
        d.relay.finishStream(into: &d.out)
        let usage = try #require(d.clientChunks.last?["usage"] as? [String: Any])
        #expect(usage["completion_tokens"] as? Int == 2, "\(usage)")
        #expect(usage["prompt_tokens"] as? Int == 7, "the request's estimate: \(usage)")
    }

    @Test("Two upstreams each within the bounds are not called implausible, though their sum is bounded")
    func continuation() throws {
        var d = RelayDriver(usage: true, maxTokens: 2, promptTokenBound: 600)
        _ = d.feed(rawChunk("a", #""x""#) + Self.usage(prompt: 10, completion: 2), from: 1)
        d.committed = nil
        // An exact continuation regenerates the token the client has and counts it again.
        _ = d.feed(
            rawChunk("b", #""y""#, finish: "stop")
                + Self.usage(prompt: 10, completion: 2).replacingOccurrences(of: "\"a\"", with: "\"b\""), from: 2)
        d.relay.finishStream(into: &d.out)
        #expect(d.relay.implausibleUsage == nil)
        let usage = try #require(d.clientChunks.last?["usage"] as? [String: Any])
        #expect(usage["completion_tokens"] as? Int == 2)
    }

    @Test("A whole answer's usage and its details are bounded; without max_tokens, by the text the relay may hold")
    func whole() {
        var d = RelayDriver(streaming: false, maxAggregateBytes: 1_000, promptTokenBound: 600)
        _ = d.feed(
            rawChunk("a", #""x""#, finish: "stop")
                + Self.usage(prompt: 700, completion: 5_000, cached: 650, reasoning: 4_000), from: 1)
        let usage = d.relay.response(model: "m").usage
        #expect(usage.promptTokens == 600)
        #expect(usage.completionTokens == 1_000)
        #expect(usage.details?.cachedTokens == 600)
        #expect(usage.details?.reasoningTokens == 1_000)
    }

    @Test(
        "Counts the scanner does not read, total_tokens and usage on a text chunk never reach the client unread (helper-76)",
        arguments: [
            #""completion_tokens":1e6"#, #""completion_tokens":"1000000""#,
            #""completion_tokens":99999999999999999999"#,
        ])
    func unreadCounts(count: String) throws {
        var d = RelayDriver(usage: true, maxTokens: 8, promptTokenBound: 600)
        let textWithUsage =
            #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"usage":{"prompt_tokens":1,\#(count),"total_tokens":1000001}}"#
            + "\n\n"
        let closing =
            #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","system_fingerprint":"fp","choices":[],"usage":{"prompt_tokens":5,\#(count),"total_tokens":1000005}}"#
            + "\n\n"
        _ = d.feed(textWithUsage + rawChunk("a", #""y""#, finish: "stop") + closing, from: 1)
        d.relay.finishStream(into: &d.out)
        #expect(
            !d.client.contains("1000000") && !d.client.contains("1e6") && !d.client.contains("99999"), "\(d.client)")
        let chunks = d.clientChunks
        #expect(chunks.dropLast().allSatisfy { $0["usage"] == nil }, "usage only in the closing chunk")
        let last = try #require(chunks.last)
        #expect(last["system_fingerprint"] as? String == "fp", "the closing chunk's other members kept")
        let usage = try #require(last["usage"] as? [String: Any])
        #expect((usage["completion_tokens"] as? Int).map { $0 <= 8 } == true)
        #expect(
            usage["total_tokens"] as? Int == (usage["prompt_tokens"] as? Int)! + (usage["completion_tokens"] as? Int)!)
    }

    @Test(
        "Without max_tokens a car's completion_tokens are bounded by the bytes it sent; central's are not (helper-76)")
    func carBoundedByBytes() throws {
        let answer = rawChunk("a", #""x""#) + rawChunk("a", #""y""#, finish: "stop")
        let usage = Self.usage(prompt: 5, completion: 1_000_000)
        var car = RelayDriver(usage: true, promptTokenBound: 600)
        car.relay.open(attempt: 1, untrusted: true)
        car.opened.insert(1)
        _ = car.feed(answer + usage, from: 1)
        car.relay.finishStream(into: &car.out)
        let sent = (answer + usage).utf8.count
        let counted = try #require((car.clientChunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int)
        #expect(counted == sent, "bounded by the \(sent) bytes the car sent")
        #expect(car.relay.implausibleUsage?.completionTokens == 1_000_000, "logged as the car said it")

        // Central (a model whose reasoning is hidden counts tokens it never sends): the request's bound only.
        var central = RelayDriver(usage: true, promptTokenBound: 600)
        _ = central.feed(answer + usage, from: 1)
        central.relay.finishStream(into: &central.out)
        #expect((central.clientChunks.last?["usage"] as? [String: Any])?["completion_tokens"] as? Int == 1_000_000)
        #expect(central.relay.implausibleUsage == nil)
    }
}
