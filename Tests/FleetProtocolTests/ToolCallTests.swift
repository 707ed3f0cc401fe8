import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("Tool calls: a chunk's pieces read, joined into an answer's calls, and written as OpenAI writes them")
struct ToolCallTests {
    @Test("A chunk's pieces by choice; a chunk whose pieces have another shape is refused, not half read")
    func deltas() {
        let chunk = ByteBuffer(
            string:
                #"{"id":"a","choices":[{"index":0,"delta":{"content":"x","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":"}}]}},{"index":2,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"1"}}]}},{"index":1,"delta":{"content":"y"}}]}"#
        )
        let deltas = ToolCall.deltas(inChunk: chunk)
        #expect(deltas?.keys.sorted() == [0, 2])
        #expect(deltas?[0]?.first?.function?.arguments == #"{"a":"#)
        #expect(deltas?[2]?.first?.index == 1)
        for bad in [
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":7}]}}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":{}}}]}}]}"#,
            #"{"choices":[{"index":0,"delta":{"tool_calls":{"index":0}}}]}"#,
        ] {
            #expect(ToolCall.deltas(inChunk: ByteBuffer(string: bad)) == nil, "\(bad)")
        }
    }

    @Test("Pieces joined by id, else index: the first id, type and name, every argument piece in order")
    func joined() {
        var calls = ToolCallAccumulator()
        #expect(calls.isEmpty)
        calls.append([.init(index: 0, id: "c1", function: .init(name: "weather", arguments: #"{"city":"#))])
        calls.append([
            .init(index: 0, id: nil, type: nil, function: .init(name: nil, arguments: #""Paris"}"#)),
            .init(index: 1, id: "c2", function: .init(name: "time", arguments: nil)),
        ])
        // No index, no id: the last call goes on.
        calls.append([.init(index: nil, id: nil, type: nil, function: .init(name: "other", arguments: "x"))])
        let whole = calls.toolCalls(missingIDPrefix: "call_r_")
        #expect(whole.map(\.id) == ["c1", "c2"])
        #expect(whole.map(\.index) == [nil, nil])
        #expect(whole.map(\.type) == ["function", "function"])
        #expect(whole.map(\.function?.name) == ["weather", "time"])
        #expect(whole.map(\.function?.arguments) == [#"{"city":"Paris"}"#, "x"])
    }

    /// helper-69: Ollama sends each of several calls whole at `index` 0 (before 0.4.7 with no index);
    /// joined by index they became one call with both arguments run together.
    @Test("A new id is a new call, at a used index or with none; a call without id gets one")
    func ollamaCalls() {
        for index in [0, nil] as [Int?] {
            var calls = ToolCallAccumulator()
            let first = calls.place(.init(index: index, id: "a", function: .init(name: "weather", arguments: "{}")))
            let second = calls.place(.init(index: index, id: "b", function: .init(name: "weather", arguments: "[]")))
            #expect(first == (0, true) && second == (1, true), "\(String(describing: index))")
            #expect(calls.toolCalls(missingIDPrefix: "x").map(\.function?.arguments) == ["{}", "[]"])
        }
        var unnamed = ToolCallAccumulator()
        unnamed.append([.init(index: 0, id: nil, type: nil, function: .init(name: nil, arguments: "{}"))])
        let call = unnamed.toolCalls(missingIDPrefix: "call_r_")[0]
        #expect(call.id == "call_r_0" && call.function?.name == "" && call.type == "function")
        #expect(ToolCall.missingIDPrefix(answerID: "chatcmpl-abc") == "call_abc_")
        #expect(ToolCall.missingIDPrefix(answerID: "msg_abc") == "call_abc_")
    }

    @Test("An answer's message: content null when the model only called tools, as OpenAI writes it")
    func message() throws {
        let call = ToolCall(id: "c1", function: .init(name: "f", arguments: "{}"))
        let only = String(buffer: JSON.buffer(ChatMessage(role: "assistant", content: "", toolCalls: [call])))
        #expect(only.contains(#""content":null"#) && only.contains(#""tool_calls":[{"function""#), "\(only)")
        let both = String(buffer: JSON.buffer(ChatMessage(role: "assistant", content: "hi", toolCalls: [call])))
        #expect(both.contains(#""content":"hi""#), "\(both)")
        let none = String(buffer: JSON.buffer(ChatMessage(role: "assistant", content: "")))
        #expect(none == #"{"content":"","role":"assistant"}"#)
    }
}
