/// Finds a job's stop sequences in the text it generates, token by token, as OpenAI's `stop` works:
/// the answer ends just before the first occurrence of any of them, wherever it falls — inside a
/// token, or across tokens. (The synthetic engine matched only a token's end, and its tokens end in a
/// space, so `"stop": ["the"]` never fired; helper-60.)
///
/// A stop sequence that spans tokens ends the answer at the token that completes it; the tokens
/// before it were already streamed (an engine that holds back a token that might begin one would
/// break the one-emit-per-token count continuations resume from).
///
/// A pure value: ``next(_:)`` takes each token and says what of it to emit.
struct StopMatcher {
    /// What to do with a token.
    enum Step: Equatable {
        /// Emit the whole token and go on.
        case emit
        /// Emit this much of the token (possibly nothing), then finish with `stop`.
        case stop(emitting: String)
    }

    private let stops: [[UInt8]]
    /// The last bytes already emitted, as many as a stop sequence could still need (its length − 1).
    private var recent: [UInt8] = []
    private let keep: Int

    /// - Parameter stops: the request's stop sequences; empty ones are ignored.
    init(_ stops: [String]) {
        self.stops = stops.filter { !$0.isEmpty }.map { Array($0.utf8) }
        self.keep = max(0, (self.stops.map(\.count).max() ?? 0) - 1)
    }

    /// Whether there is anything to look for.
    var isEmpty: Bool { self.stops.isEmpty }

    /// The next token: emitted whole, or cut before the first stop sequence that ends in it.
    mutating func next(_ token: String) -> Step {
        guard !self.stops.isEmpty else { return .emit }
        let bytes = Array(token.utf8)
        let window = self.recent + bytes
        var first: Int?
        for stop in self.stops where stop.count <= window.count {
            // Only occurrences that end in this token: earlier ones were looked for with earlier tokens.
            let start = max(0, self.recent.count - stop.count + 1)
            var i = start
            while i + stop.count <= window.count, i < (first ?? .max) {
                if window[i..<(i + stop.count)].elementsEqual(stop) {
                    first = i
                    break
                }
                i += 1
            }
        }
        if let first {
            let cut = max(0, first - self.recent.count)
            return .stop(emitting: String(decoding: bytes[..<cut], as: UTF8.self))
        }
        self.recent = Array(window.suffix(self.keep))
        return .emit
    }
}
