/// Joins a streamed answer's tool-call pieces into the calls of a whole answer (`message.tool_calls`):
/// the first `id`, `type` and `name` each call's pieces bring, and the `arguments` of every piece in
/// order.
///
/// Which call a piece continues (``place(_:)``): the call with its `id`, when it has one — a piece
/// with a new `id` is a new call even at an `index` already used (Ollama sends each of several calls
/// whole with `index` 0, and before 0.4.7 with no `index`: joined by index alone, two calls became
/// one with both arguments run together, helper-69) —; else the last call with its `index`; else,
/// with neither, the last call. Anything that matches no call begins one.
///
/// What it holds is bounded by its caller, which counts the pieces' bytes in the answer's own bound.
public struct ToolCallAccumulator: Sendable {
    /// The calls in the order of their first piece, with the `index` their pieces gave (nil: none).
    private var calls: [(index: Int?, call: ToolCall)] = []

    public init() {}

    /// Whether no piece arrived.
    public var isEmpty: Bool { self.calls.isEmpty }

    /// Adds one chunk's pieces of one choice.
    public mutating func append(_ pieces: [ToolCall]) {
        for piece in pieces { self.place(piece) }
    }

    /// Adds one piece; returns the position of the call it went to and whether it began that call.
    @discardableResult
    public mutating func place(_ piece: ToolCall) -> (position: Int, began: Bool) {
        let position: Int?
        if let id = piece.id {
            position =
                self.calls.lastIndex { $0.call.id == id }
                // An id-less call at this index (its id comes later, as some servers send it) takes it.
                ?? piece.index.flatMap { index in self.calls.lastIndex { $0.index == index && $0.call.id == nil } }
        } else if let index = piece.index {
            position = self.calls.lastIndex { $0.index == index }
        } else {
            position = self.calls.indices.last
        }
        guard let position else {
            var first = piece
            first.index = nil
            self.calls.append((piece.index, first))
            return (self.calls.count - 1, true)
        }
        var call = self.calls[position].call
        call.id = call.id ?? piece.id
        call.type = call.type ?? piece.type
        if let function = piece.function {
            var joined = call.function ?? .init(name: nil, arguments: nil)
            if joined.name?.isEmpty ?? true { joined.name = function.name ?? joined.name }
            if let more = function.arguments { joined.arguments = (joined.arguments ?? "") + more }
            call.function = joined
        }
        self.calls[position].call = call
        return (position, false)
    }

    /// The call at `position` so far, as it was joined (no `index`): `position` as ``place(_:)`` gave it.
    public func call(at position: Int) -> ToolCall { self.calls[position].call }

    /// The whole calls, in the order they began: `type` `function` when no piece said, `arguments`
    /// `""` when none came, `name` `""` and the id `missingIDPrefix` and the call's position when the
    /// runtime gave none (the SDKs' models require all four).
    public func toolCalls(missingIDPrefix: String) -> [ToolCall] {
        self.calls.enumerated().map { position, entry in
            var call = entry.call
            call.id = call.id ?? "\(missingIDPrefix)\(position)"
            call.type = call.type ?? "function"
            var function = call.function ?? .init(name: nil, arguments: nil)
            function.name = function.name ?? ""
            function.arguments = function.arguments ?? ""
            call.function = function
            return call
        }
    }
}
