/// A request's attempts by id, for ``Dispatcher`` and ``SSERelay``: a handful at most (the first, its
/// retries and hedges, bounded by the dispatch limits), so a list searched from the newest costs less
/// than hashing an `Int` with SipHash several times a token (issue #19: ~40 k instructions a 32-token
/// stream). The subset of `Dictionary`'s interface they use, with the same meaning; keys and values
/// come in the order the attempts were added.
struct AttemptMap<Value> {
    private var ids: [Int] = []
    private var entries: [Value] = []

    init() {}

    /// The attempt's value; setting nil removes it.
    subscript(id: Int) -> Value? {
        get {
            guard let index = self.ids.lastIndex(of: id) else { return nil }
            return self.entries[index]
        }
        set {
            if let index = self.ids.lastIndex(of: id) {
                if let newValue {
                    self.entries[index] = newValue
                } else {
                    self.ids.remove(at: index)
                    self.entries.remove(at: index)
                }
            } else if let newValue {
                self.ids.append(id)
                self.entries.append(newValue)
            }
        }
    }

    /// Runs `body` on the attempt's value in place (no copy out and back, which would also make its
    /// buffers' storage shared and copied on the next write); nil when there is no such attempt.
    mutating func modify<Result>(_ id: Int, _ body: (inout Value) throws -> Result) rethrows -> Result? {
        guard let index = self.ids.lastIndex(of: id) else { return nil }
        return try body(&self.entries[index])
    }

    /// `body`'s answer about the attempt's value, read where it is stored; nil when there is no such attempt.
    func read<Result>(_ id: Int, _ body: (Value) throws -> Result) rethrows -> Result? {
        guard let index = self.ids.lastIndex(of: id) else { return nil }
        return try body(self.entries[index])
    }

    @discardableResult
    mutating func removeValue(forKey id: Int) -> Value? {
        guard let index = self.ids.lastIndex(of: id) else { return nil }
        self.ids.remove(at: index)
        return self.entries.remove(at: index)
    }

    var keys: [Int] { self.ids }
    var values: [Value] { self.entries }
    var count: Int { self.ids.count }
    var isEmpty: Bool { self.ids.isEmpty }
}

extension AttemptMap: ExpressibleByDictionaryLiteral {
    init(dictionaryLiteral elements: (Int, Value)...) {
        for (id, value) in elements { self[id] = value }
    }
}

extension AttemptMap: Sendable where Value: Sendable {}
