import FleetProtocol

/// Checks received text against the synthetic reference (DESIGN.md: the text is a function of the
/// seed and the token index), piece by piece, whatever the chunking.
package struct ReferenceText: Sendable {
    let seed: UInt64
    /// Reference tokens generated so far.
    private var tokens: [String] = []
    /// The received text, as UTF-8, that matched so far.
    private var matched: [UInt8] = []
    private var expected: [UInt8] = []
    /// The first mismatch, once there is one (checking stops there).
    package private(set) var error: RequestResult.TextError?

    /// `seed` is the request's `seed` field, as the gateway and the car read it.
    package init(requestSeed: Int) {
        self.seed = UInt64(bitPattern: Int64(requestSeed))
    }

    /// Whole reference tokens received so far.
    package var tokenCount: Int {
        var length = 0
        var count = 0
        for token in self.tokens {
            length += token.utf8.count
            if length > self.matched.count { break }
            count += 1
        }
        return count
    }

    private mutating func extend(to bytes: Int) {
        while self.expected.count < bytes {
            let token = SyntheticText.token(seed: self.seed, index: self.tokens.count)
            self.tokens.append(token)
            self.expected.append(contentsOf: token.utf8)
        }
    }

    /// Feeds one piece of content; returns false at the first mismatch.
    @discardableResult
    package mutating func feed(_ piece: String) -> Bool {
        guard self.error == nil else { return false }
        let bytes = Array(piece.utf8)
        let start = self.matched.count
        self.extend(to: start + bytes.count + 64)
        if Array(self.expected[start..<start + bytes.count]) == bytes {
            self.matched.append(contentsOf: bytes)
            return true
        }
        // A piece seen before (a repeated token) or one from further on (a lost token)?
        let text = String(decoding: self.expected, as: UTF8.self)
        let before = String(decoding: self.matched, as: UTF8.self)
        if !piece.isEmpty && before.hasSuffix(piece) {
            self.error = .repeated
        } else if !piece.isEmpty && text.dropFirst(before.count).contains(piece) {
            self.error = .lost
        } else {
            self.error = .corrupt
        }
        return false
    }

    /// At the end of an answer that should hold `count` tokens: short text is lost tokens.
    package mutating func finish(expectingTokens count: Int) {
        if self.error == nil && self.tokenCount < count { self.error = .lost }
    }
}
