/// What one application key may do (one entry of the key file, `docs/operations.md`).
package struct KeyPolicy: Sendable, Hashable {
    /// Where the key's requests may be served.
    package enum Route: String, Sendable, Hashable {
        /// Cars or central capacity, as the scheduler decides.
        case any
        /// Central capacity only (never a car).
        case central
    }

    /// The name used in metrics and logs (bounded: it comes from the file).
    package var name: String
    /// SHA-256 of the key; the key itself is never stored.
    package var sha256: [UInt8]
    /// Models the key may use; nil: every model.
    package var models: Set<String>?
    package var route: Route
    /// Requests per second (token bucket refill) and the bucket's size; nil: unlimited.
    package var requestsPerSecond: Double?
    package var burst: Double?
    /// Prompt plus completion tokens per minute; nil: unlimited.
    package var tokensPerMinute: Double?
    /// Streams in flight at once; nil: unlimited.
    package var concurrentStreams: Int?

    /// An unlimited key (`--api-key`, kept for development and compatibility).
    package static func unlimited(name: String, sha256: [UInt8]) -> Self {
        Self(
            name: name, sha256: sha256, models: nil, route: .any, requestsPerSecond: nil, burst: nil,
            tokensPerMinute: nil, concurrentStreams: nil)
    }
}
