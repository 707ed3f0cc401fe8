import Foundation
public import NIOCore

/// A function call the model chose: one of an answer's `message.tool_calls`, or a streamed piece of
/// one (`delta.tool_calls[i]`, which carries its `index` and, after the first piece, usually only
/// more of the `arguments`).
///
/// Read from an upstream's chunk only when the chunk has tool calls (``ChunkScanner/Choice/hasToolCalls``),
/// which is rare: a `JSONDecoder` there costs nothing on the path of text tokens.
public struct ToolCall: Codable, Sendable, Hashable {
    /// The call's position among the answer's calls: in a streamed piece only.
    public var index: Int?
    public var id: String?
    /// `function` (the only type chat completions define).
    public var type: String?
    public var function: Function?

    /// The function's name and its arguments, a JSON text the model wrote (not validated: OpenAI
    /// does not either, and an app must parse it itself).
    public struct Function: Codable, Sendable, Hashable {
        public var name: String?
        public var arguments: String?

        public init(name: String?, arguments: String?) {
            self.name = name
            self.arguments = arguments
        }
    }

    public init(index: Int? = nil, id: String?, type: String? = "function", function: Function?) {
        self.index = index
        self.id = id
        self.type = type
        self.function = function
    }

    /// The id prefix for the calls a runtime sent without an id (the SDKs require one): `call_`, the
    /// answer's id without its kind (`chatcmpl-`, `msg_`), `_`; the call's position follows.
    public static func missingIDPrefix(answerID: String) -> String {
        let base = answerID.firstIndex { $0 == "-" || $0 == "_" }.map { answerID[answerID.index(after: $0)...] }
        return "call_\(base ?? answerID[...])_"
    }

    /// The tool-call pieces of each choice of one chunk (`choices[i].delta.tool_calls`), by choice
    /// index; nil when the payload is not a chunk whose tool calls have this shape (a number for an
    /// `id`, arguments that are not a string: an upstream's fault). Choices without tool calls are
    /// left out.
    public static func deltas(inChunk payload: ByteBuffer) -> [Int: [ToolCall]]? {
        Self.deltas(inChunk: Data(payload.readableBytesView))
    }

    /// ``deltas(inChunk:)-(ByteBuffer)`` of a payload in memory the caller holds.
    public static func deltas(inChunk payload: UnsafeRawBufferPointer) -> [Int: [ToolCall]]? {
        Self.deltas(inChunk: Data(payload))
    }

    private static func deltas(inChunk payload: Data) -> [Int: [ToolCall]]? {
        guard let chunk = try? JSONDecoder().decode(DeltaChunk.self, from: payload) else { return nil }
        var byChoice: [Int: [ToolCall]] = [:]
        for (position, choice) in (chunk.choices ?? []).enumerated() {
            guard let calls = choice.delta?.toolCalls, !calls.isEmpty else { continue }
            byChoice[choice.index ?? position, default: []] += calls
        }
        return byChoice
    }

    private struct DeltaChunk: Decodable {
        var choices: [Choice]?

        struct Choice: Decodable {
            var index: Int?
            var delta: Delta?
        }

        struct Delta: Decodable {
            var toolCalls: [ToolCall]?
            enum CodingKeys: String, CodingKey { case toolCalls = "tool_calls" }
        }
    }
}
