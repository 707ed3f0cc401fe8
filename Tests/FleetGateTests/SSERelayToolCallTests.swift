import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("SSERelay: tool calls")
struct SSERelayToolCallTests {
    static func piece(_ calls: String, index: Int = 0, finish: String? = nil) -> String {
        let reason = finish.map { "\"\($0)\"" } ?? "null"
        return
            #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":\#(index),"delta":{"tool_calls":\#(calls)},"finish_reason":\#(reason)}]}"#
            + "\n\n"
    }

    static let stream =
        piece(#"[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":"}}]"#)
        + piece(#"[{"index":0,"function":{"arguments":"1}"}}]"#)
        + #"data: {"id":"a","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"# + "\n\n"
        + "data: [DONE]\n\n"

    @Test("stream: false joins the pieces into message.tool_calls, content null, finish tool_calls")
    func joined() throws {
        var d = RelayDriver(streaming: false)
        let kinds = d.feed(Self.stream, from: 1)
        #expect(kinds == [.output, .output, .output, .done])
        let response = d.relay.response(model: "m")
        let message = try #require(response.choices.first?.message)
        #expect(message.toolCalls == [.init(id: "c1", function: .init(name: "f", arguments: #"{"x":1}"#))])
        #expect(response.choices.first?.finishReason == "tool_calls")
        #expect(String(buffer: d.relay.responseBody(model: "m")).contains(#""content":null"#))
        #expect(d.relay.deliveredTokens == 2)
    }

    @Test("Streamed, the pieces pass as they came; joined, pieces of another shape are the upstream's fault")
    func badShape() {
        let bad = Self.piece(#"[{"index":0,"function":{"arguments":{"x":1}}}]"#)
        var streamed = RelayDriver(streaming: true)
        #expect(streamed.feed(bad, from: 1) == [.output])
        #expect(streamed.client.contains(#""arguments":{"x":1}"#))
        var whole = RelayDriver(streaming: false)
        #expect(whole.feed(bad, from: 1) == [.malformed(label: "bad_tool_call")])
    }

    @Test("A restarted stream: false answer drops the lost attempt's calls")
    func restart() {
        var d = RelayDriver(streaming: false)
        _ = d.feed(Self.piece(#"[{"index":0,"id":"lost","function":{"name":"g","arguments":"{}"}}]"#), from: 1)
        d.relay.restart()
        d.committed = nil
        _ = d.feed(Self.stream, from: 2)
        #expect(d.relay.response(model: "m").choices.first?.message?.toolCalls?.map(\.id) == ["c1"])
    }
}
