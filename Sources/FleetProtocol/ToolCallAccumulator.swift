/// Joins a streamed answer's tool-call pieces into the calls of a whole answer (`message.tool_calls`),
/// as the OpenAI SDKs join them: by `index`, the first `id`, `type` and `name` each piece brings, and
/// the `arguments` of every piece in order.
///
/// What it holds is bounded by its caller, which counts the pieces' bytes in the answer's own bound.
public struct ToolCallAccumulator: Sendable, Hashable {
    /// The calls so far, by index.
    private var calls: [Int: ToolCall] = [:]
    /// Indices in the order of their first piece.
    private var order: [Int] = []

    public init() {}

    /// Whether no piece arrived.
    public var isEmpty: Bool { self.order.isEmpty }

    /// Adds one chunk's pieces of one choice. A piece without an `index` continues the call of its
    /// position in the chunk (a server that streams one call per chunk and omits it).
    public mutating func append(_ pieces: [ToolCall]) {
        for (position, piece) in pieces.enumerated() {
            let index = piece.index ?? position
            guard var call = self.calls[index] else {
                var first = piece
                first.index = nil
                self.calls[index] = first
                self.order.append(index)
                continue
            }
            call.id = call.id ?? piece.id
            call.type = call.type ?? piece.type
            if let function = piece.function {
                var joined = call.function ?? .init(name: nil, arguments: nil)
                joined.name = joined.name ?? function.name
                if let more = function.arguments { joined.arguments = (joined.arguments ?? "") + more }
                call.function = joined
            }
            self.calls[index] = call
        }
    }

    /// The whole calls, in the order they began: `type` `function` when no piece said, `arguments`
    /// `""` when none came (the SDKs' models require both).
    public var toolCalls: [ToolCall] {
        self.order.compactMap { index in
            guard var call = self.calls[index] else { return nil }
            call.type = call.type ?? "function"
            var function = call.function ?? .init(name: nil, arguments: nil)
            function.arguments = function.arguments ?? ""
            call.function = function
            return call
        }
    }
}
