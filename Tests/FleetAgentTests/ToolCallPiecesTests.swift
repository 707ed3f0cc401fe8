import FleetProtocol
import Testing

@testable import FleetAgent

@Suite("A runtime's tool-call pieces as the agent streams them")
struct ToolCallPiecesTests {
    /// helper-71: llama-cpp-python repeats id, type and name in every piece; LangChain joined the name to itself.
    @Test("id, type and name go in a call's first piece only; a call without an id gets one; calls are joined")
    func firstPieceOnly() {
        var pieces = ToolCallPieces()
        let piece = { (arguments: String) in
            ToolCall(index: 0, id: "call_1", function: .init(name: "get_weather", arguments: arguments))
        }
        let first = pieces.place([piece("{\"city\":")], answerID: "chatcmpl-x")
        let second = pieces.place([piece("\"Paris\"}")], answerID: "chatcmpl-x")
        #expect(first[0].id == "call_1" && first[0].type == "function" && first[0].function?.name == "get_weather")
        #expect(second[0].id == nil && second[0].type == nil && second[0].function?.name == nil)
        #expect(second[0].function?.arguments == "\"Paris\"}" && second[0].index == 0)
        // A second call without an id: numbered 1, an id made from the answer's.
        let other = pieces.place(
            [ToolCall(index: 1, id: nil, function: .init(name: "get_time", arguments: "{}"))], answerID: "chatcmpl-x")
        #expect(other[0].index == 1 && other[0].id == ToolCall.missingIDPrefix(answerID: "chatcmpl-x") + "1")
        let joined = pieces.calls.toolCalls(missingIDPrefix: "unused")
        #expect(joined.map(\.function?.name) == ["get_weather", "get_time"])
        #expect(joined.first?.function?.arguments == "{\"city\":\"Paris\"}")
    }
}
