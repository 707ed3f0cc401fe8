/// Header names of the fleet's API (DESIGN.md, Contracts).
public enum FleetHeader {
    /// Request: tighten the privacy zone; response: the zone enforced.
    public static let residency = "x-fleet-residency"
    /// Request: the time-to-first-token objective in milliseconds.
    public static let sloTTFT = "x-slo-ttft-ms"
    /// Both: the request id (echoed or generated).
    public static let requestID = "x-request-id"
    /// Response: `car` or `central`.
    public static let route = "x-fleet-route"
    /// Response: the serving region.
    public static let region = "x-fleet-region"
    /// Response: the origin's region.
    public static let originRegion = "x-fleet-origin-region"
    /// Response: the zone enforced.
    public static let zone = "x-fleet-zone"
    /// Response: the serving car's pseudonym.
    public static let vehicle = "x-fleet-vehicle"
    /// Response: how many upstreams were tried.
    public static let attempts = "x-fleet-attempts"
    /// Response: the scorer's predicted TTFT.
    public static let predictedTTFT = "x-fleet-predicted-ttft-ms"
    /// Gateway → car: the seed for deterministic synthetic text.
    public static let seed = "x-fleet-seed"
    /// Gateway → car: `prefix` — the body's last message is the delivered text, to be continued.
    public static let continuation = "x-fleet-continuation"
    /// Gateway → car: continue from this token index (failover).
    public static let resumeFrom = "x-fleet-resume-from"
    /// Response trailer: how many times the stream moved to another upstream mid-stream.
    public static let migrations = "x-fleet-migrations"
    /// Gateway → car: `sse-usage` — answer as SSE with a usage chunk whatever the body's `stream`
    /// says, so the gateway forwards the client's body bytes unchanged instead of re-encoding them.
    public static let streamMode = "x-fleet-stream"
    /// Replica → replica (issue #21): the client's origin, HMAC-signed by the forwarding replica;
    /// believed only on the internal listener, ignored from clients.
    public static let forwardedOrigin = "x-fleet-forwarded-origin"
    /// Replica → replica: how many replicas the request went through before this one (at most 1).
    public static let hop = "x-fleet-hop"
}
