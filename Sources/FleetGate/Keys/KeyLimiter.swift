/// The quota state of every application key: pure (no locks, no clock, no I/O), so its rules are
/// tested without sockets; ``AppKeys`` holds one behind a mutex.
package struct KeyLimiter: Sendable {
    /// One key's policy and what it has used.
    package struct Entry: Sendable {
        package var policy: KeyPolicy
        package var requests: TokenBucket?
        package var tokens: TokenBucket?
        package var streams = 0
    }

    /// The answer to one request.
    package enum Admission: Equatable {
        case admitted(KeyPolicy)
        case unknownKey
        case modelNotAllowed(name: String)
        /// Over a rate or the concurrency limit; retry after this many seconds (≥ 1, rounded up).
        case limited(name: String, reason: Reason, retryAfter: Int)
    }

    /// Which limit refused a request (a metrics label).
    package enum Reason: String, Sendable {
        case requests = "requests_per_second"
        case tokens = "tokens_per_minute"
        case streams = "concurrent_streams"
    }

    package private(set) var entries: [[UInt8]: Entry] = [:]

    package init(policies: [KeyPolicy], now: Double) {
        self.replace(policies: policies, now: now)
    }

    /// Whether any key is configured (no keys: the API is open).
    package var isEmpty: Bool { self.entries.isEmpty }

    /// Installs a new set of policies; a key that stays keeps its buckets and streams.
    package mutating func replace(policies: [KeyPolicy], now: Double) {
        var entries: [[UInt8]: Entry] = [:]
        for policy in policies {
            var entry = self.entries[policy.sha256] ?? Entry(policy: policy)
            entry.policy = policy
            entry.requests = Self.bucket(
                entry.requests, capacity: policy.burst ?? max(1, policy.requestsPerSecond ?? 0),
                rate: policy.requestsPerSecond, now: now)
            entry.tokens = Self.bucket(
                entry.tokens, capacity: policy.tokensPerMinute ?? 0, rate: policy.tokensPerMinute.map { $0 / 60 },
                now: now)
            entries[policy.sha256] = entry
        }
        self.entries = entries
    }

    private static func bucket(_ old: TokenBucket?, capacity: Double, rate: Double?, now: Double) -> TokenBucket? {
        guard let rate else { return nil }
        guard var old else { return TokenBucket(capacity: capacity, rate: rate, now: now) }
        old.reconfigure(capacity: capacity, rate: rate, now: now)
        return old
    }

    /// Admits one request of the key with this hash for `model`, taking a request token and a stream.
    package mutating func admit(keyHash: [UInt8], model: String, now: Double) -> Admission {
        guard var entry = self.entries[keyHash] else { return .unknownKey }
        let name = entry.policy.name
        if let models = entry.policy.models, !models.contains(model) { return .modelNotAllowed(name: name) }
        if let limit = entry.policy.concurrentStreams, entry.streams >= limit {
            return .limited(name: name, reason: .streams, retryAfter: 1)
        }
        if let wait = entry.tokens?.waitUntilPositive(now: now) {
            self.entries[keyHash] = entry
            return .limited(name: name, reason: .tokens, retryAfter: Self.seconds(wait))
        }
        if let wait = entry.requests?.take(1, now: now) {
            self.entries[keyHash] = entry
            return .limited(name: name, reason: .requests, retryAfter: Self.seconds(wait))
        }
        entry.streams += 1
        self.entries[keyHash] = entry
        return .admitted(entry.policy)
    }

    /// Ends an admitted request: returns its stream and charges the tokens it used.
    package mutating func finish(keyHash: [UInt8], tokens: Int, now: Double) {
        guard var entry = self.entries[keyHash] else { return }  // removed by a reload meanwhile
        entry.streams = max(0, entry.streams - 1)
        entry.tokens?.charge(Double(max(0, tokens)), now: now)
        self.entries[keyHash] = entry
    }

    private static func seconds(_ wait: Double) -> Int {
        wait.isFinite ? max(1, Int(wait.rounded(.up))) : 3_600
    }
}
