import FleetProtocol

/// A runtime's tool calls as the agent passes them on: joined for a `stream: false` answer, and each
/// streamed piece made into what OpenAI streams.
///
/// - Each piece is numbered by the call it belongs to (``ToolCallAccumulator/place(_:)``): a runtime that
///   sends several calls at `index` 0 (Ollama), or with none, reached the app's SDK as one call with both
///   calls' names and arguments run together (helper-69).
/// - A call's `id`, `type` and `name` go in its first piece only: a runtime that repeats them in every
///   piece (llama-cpp-python) made LangChain join the name to itself once per piece (helper-71:
///   `get_weatherget_weather…`). A call without an id gets one made from the answer's.
struct ToolCallPieces {
    /// The calls joined so far.
    private(set) var calls = ToolCallAccumulator()
    /// The calls whose name was streamed.
    private var named: Set<Int> = []

    /// Joins `pieces` into ``calls`` and returns them as they are to be streamed.
    mutating func place(_ pieces: [ToolCall], answerID: String) -> [ToolCall] {
        var pieces = pieces
        for position in pieces.indices {
            let placed = self.calls.place(pieces[position])
            pieces[position].index = placed.position
            if placed.began {
                if pieces[position].id == nil {
                    pieces[position].id = ToolCall.missingIDPrefix(answerID: answerID) + String(placed.position)
                }
            } else {
                pieces[position].id = nil
                pieces[position].type = nil
            }
            if let name = pieces[position].function?.name, !name.isEmpty {
                if self.named.contains(placed.position) {
                    pieces[position].function?.name = nil
                } else {
                    self.named.insert(placed.position)
                }
            }
        }
        return pieces
    }
}
