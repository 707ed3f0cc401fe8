/// Which holders (cars, or central) served which conversation prefixes, for one (model, zone):
/// a bounded LRU with a time to live (issue #14).
///
/// 1. ``record(_:holder:now:)`` — a holder finished a job whose prompt ended with this chunk: the
///    entry moves to the front (or is made, evicting the least recently used one at capacity) and
///    the holder becomes its most recent holder (at most ``holdersPerEntry``).
/// 2. ``lookup(_:now:limit:)`` — the holders of a request's longest known prefixes, longest first,
///    each with the tokens of the longest prefix it holds. Entries older than the TTL are dropped
///    when met.
///
/// Keys are keyed hashes (``PrefixHasher``); no prompt text is kept. A holder carries an epoch so
/// that a car's entries die at once when it leaves (its ``CarID`` generation) or its runtime
/// reports a cache reset (the registry's epoch): the caller checks the epoch, and the space is
/// reclaimed by the LRU and the TTL. Pure value type: no clock, no locks.
public struct PrefixCacheMap: Sendable {
    /// A holder of a prefix: a car's raw ``CarID`` (or ``central``) and its cache epoch then.
    public struct Holder: Sendable, Hashable {
        public var id: Int
        public var epoch: UInt32
        public init(id: Int, epoch: UInt32) {
            self.id = id
            self.epoch = epoch
        }
    }

    /// The holder id that stands for the zone's central capacity.
    public static let central = -1

    struct Node {
        var hash: UInt64
        var stamp: Double
        var holders: [Holder]
        var newer: Int32 = -1
        var older: Int32 = -1
    }

    /// Entries kept at most.
    public let capacity: Int
    /// Seconds an entry lives after its last use.
    public let ttl: Double
    /// Holders remembered per entry (the most recent ones).
    public let holdersPerEntry: Int
    private var index: [UInt64: Int32] = [:]
    private var nodes: [Node] = []
    private var free: [Int32] = []
    private var newest: Int32 = -1
    private var oldest: Int32 = -1

    /// - Parameters:
    ///   - capacity: entries kept at most (≥ 1).
    ///   - ttl: seconds an entry lives after its last use.
    ///   - holdersPerEntry: holders remembered per entry.
    public init(capacity: Int, ttl: Double, holdersPerEntry: Int = 4) {
        self.capacity = max(1, capacity)
        self.ttl = ttl
        self.holdersPerEntry = max(1, holdersPerEntry)
    }

    /// Entries held (live or not yet expired).
    public var count: Int { self.index.count }

    /// Remembers that `holder` served a prompt ending with `chunk`.
    public mutating func record(_ chunk: PrefixChunk, holder: Holder, now: Double) {
        if let i = self.index[chunk.hash] {
            self.unlink(i)
            var node = self.nodes[Int(i)]
            node.stamp = now
            node.holders.removeAll { $0.id == holder.id }
            node.holders.insert(holder, at: 0)
            if node.holders.count > self.holdersPerEntry { node.holders.removeLast() }
            self.nodes[Int(i)] = node
            self.linkNewest(i)
            return
        }
        if self.index.count >= self.capacity, self.oldest >= 0 { self.remove(self.oldest) }
        let node = Node(hash: chunk.hash, stamp: now, holders: [holder])
        let i: Int32
        if let reused = self.free.popLast() {
            i = reused
            self.nodes[Int(i)] = node
        } else {
            i = Int32(self.nodes.count)
            self.nodes.append(node)
        }
        self.index[chunk.hash] = i
        self.linkNewest(i)
    }

    /// The holders of a request's prefixes, longest prefix first: each holder once, with the
    /// tokens of the longest prefix it holds.
    /// - Parameters:
    ///   - chunks: the request's chunks (``PrefixHasher/chunks(_:limit:)``), shortest first.
    ///   - now: the caller's clock, seconds.
    ///   - limit: holders returned at most.
    ///   - depth: chunks looked at at most, from the longest.
    public mutating func lookup(_ chunks: [PrefixChunk], now: Double, limit: Int = 4, depth: Int = 64)
        -> [(holder: Holder, tokens: Int32)]
    {
        var found: [(holder: Holder, tokens: Int32)] = []
        guard !self.index.isEmpty else { return found }
        var looked = 0
        for chunk in chunks.reversed() {
            guard looked < depth, found.count < limit else { break }
            looked += 1
            guard let i = self.index[chunk.hash] else { continue }
            if self.nodes[Int(i)].stamp + self.ttl < now {
                self.remove(i)
                continue
            }
            for holder in self.nodes[Int(i)].holders where found.count < limit {
                if !found.contains(where: { $0.holder.id == holder.id }) { found.append((holder, chunk.tokens)) }
            }
        }
        return found
    }

    /// Drops expired entries from the old end (at most `budget`), so an idle pool's map shrinks.
    public mutating func expire(now: Double, budget: Int = 64) {
        var n = 0
        while n < budget, self.oldest >= 0, self.nodes[Int(self.oldest)].stamp + self.ttl < now {
            self.remove(self.oldest)
            n += 1
        }
    }

    private mutating func remove(_ i: Int32) {
        self.unlink(i)
        self.index.removeValue(forKey: self.nodes[Int(i)].hash)
        self.nodes[Int(i)].holders = []
        self.free.append(i)
    }

    private mutating func unlink(_ i: Int32) {
        let node = self.nodes[Int(i)]
        if node.newer >= 0 { self.nodes[Int(node.newer)].older = node.older } else { self.newest = node.older }
        if node.older >= 0 { self.nodes[Int(node.older)].newer = node.newer } else { self.oldest = node.newer }
        self.nodes[Int(i)].newer = -1
        self.nodes[Int(i)].older = -1
    }

    private mutating func linkNewest(_ i: Int32) {
        self.nodes[Int(i)].older = self.newest
        self.nodes[Int(i)].newer = -1
        if self.newest >= 0 { self.nodes[Int(self.newest)].newer = i }
        self.newest = i
        if self.oldest < 0 { self.oldest = i }
    }
}
