package import FleetProtocol

/// A load scenario as read from `LoadTests/scenarios/NAME.yaml` (format: `LoadTests/README.md`).
///
/// Everything random in a run (which car has which hardware, when a client arrives, from where,
/// which car leaves) is drawn from ``seed``, so two runs of one scenario with one seed offer the
/// gateway the same work.
package struct Scenario: Sendable {
    package var name: String
    package var file: String
    package var seed: UInt64
    /// Seconds of load after the warm-up (the measured window).
    package var duration: Double
    /// Seconds of load before the measured window (requests sent then are not measured).
    package var warmup: Double
    package var gateway: GatewaySetup
    /// How fast the cars dial at the start (cars per second).
    package var carsPerSecond: Double
    package var fleet: [CarGroup]
    package var central: [CentralSetup]
    package var churn: [ChurnRule]
    package var clients: ClientMix
    package var invariants: Invariants

    /// How the harness starts its gateway.
    package struct GatewaySetup: Sendable {
        /// TLS on the tunnel port (cars verify a certificate the harness makes for the run).
        package var tunnelTLS = false
        /// `eventLoopThreads` of the gateway (0: one per core).
        package var eventLoopThreads = 1
        /// More `fleetgate serve` flags, as written.
        package var arguments: [String] = []
    }

    /// Cars of one region.
    package struct CarGroup: Sendable {
        package var region: String
        package var count: Int
        package var hardware: [(HardwareClass, Double)]
        /// Link types by share, each with the numbers ``LinkEmulator`` applies.
        package var links: [(Link, Double)]
        /// Share of cars plugged in at the start.
        package var pluggedIn: Double
        package var charge: ClosedRange<Int>
        package var policy: OwnerPolicy
        /// A hidden engine slowdown, drawn uniformly per car.
        package var slowdown: ClosedRange<Double>
    }

    /// A link type with its profile (``LinkProfile/defaults(for:)`` unless the scenario gives numbers).
    package struct Link: Sendable, Hashable {
        package var type: LinkType
        package var profile: LinkProfile
        package init(type: LinkType, profile: LinkProfile? = nil) {
            self.type = type
            self.profile = profile ?? .defaults(for: type)
        }
    }

    /// Central capacity in a region, served by the harness (a synthetic engine, many slots).
    package struct CentralSetup: Sendable {
        package var region: String
        package var maxConcurrent: Int
    }

    /// What happens to cars during the run.
    package enum ChurnKind: String, Sendable, CaseIterable, Codable {
        /// Unplugs (stays connected; the owner policy makes it ineligible).
        case unplug
        /// Announces departure in `notice` seconds, then drains and leaves.
        case departWithNotice = "depart-notice"
        /// Leaves without notice (out of coverage): silence, no FIN, no GOAWAY; the socket closes 30 s later.
        case departWithoutNotice = "depart"
        /// The process dies: the socket closes, no GOAWAY, never comes back.
        case kill
        /// Stops reading and answering PINGs (the gateway must notice by missed PINGs); later closes.
        case freeze
        /// Drains: drain message, GOAWAY, in-flight jobs finish, then leaves.
        case drain
    }

    /// One churn rule: `count` cars at `at` seconds, or a rate per 10 minutes over the whole run.
    package struct ChurnRule: Sendable {
        package var kind: ChurnKind
        package var region: String?
        package var at: Double?
        package var count: Int
        /// Share of the (matching) fleet per 10 minutes, spread as a Poisson process.
        package var ratePer10Minutes: Double?
        package var noticeSeconds: Int
        /// Seconds after which a car that left comes back under the same id (nil: never).
        package var rejoinAfter: Double?
    }

    /// How client requests arrive.
    package enum Arrivals: Sendable {
        case poisson(rate: Double)
        /// Rate rising linearly over the whole run (warm-up included).
        case ramp(from: Double, to: Double)
        /// A base Poisson rate with bursts of `burstRate` for `length` seconds every `every` seconds.
        case burst(rate: Double, burstRate: Double, every: Double, length: Double)
    }

    /// Client addresses of one country.
    package struct Origin: Sendable {
        package var country: String
        package var share: Double
        package var ranges: [String]
        /// Where in the file the origin is, for errors found when the ranges are checked against the database.
        package var line: Int
    }

    /// A lognormal distribution (median, sigma), clamped.
    package struct LogNormal: Sendable {
        package var median: Double
        package var sigma: Double
        package var min: Int
        package var max: Int
    }

    /// The clients.
    package struct ClientMix: Sendable {
        package var arrivals: Arrivals
        package var connections: Int
        package var geo: [Origin]
        package var models: [(String, Double)]
        package var promptTokens: LogNormal
        package var maxTokens: LogNormal
        package var streamingShare: Double
        package var cancelShare: Double
        /// Share of requests that are a later turn of an earlier conversation, carrying its answers.
        package var multiTurnShare: Double
        /// Share of requests sent over HTTP/1.1 keep-alive connections (the rest over HTTP/2).
        package var http1Share: Double = 0
        /// How the gateway learns each client's address.
        package var originVia: OriginVia = .xff
        /// `x-slo-ttft-ms` sent with each request (nil: none).
        package var ttftObjectiveMilliseconds: Int?
    }

    /// How the harness tells the gateway where a client is.
    package enum OriginVia: String, Sendable, CaseIterable {
        /// `X-Forwarded-For` per request; the harness is the gateway's trusted proxy.
        case xff
        /// A PROXY protocol v2 header per connection (connections are per origin address); the
        /// gateway's client port expects it from the harness (`--proxy-protocol-from`).
        case proxyV2 = "proxy-v2"
    }

    /// What must hold for the run to pass.
    package struct Invariants: Sendable {
        /// Largest share of measured requests that may fail (cancellations by the client excepted).
        package var errorBudget: Double
        package var zoneViolations: Int
        package var lostOrRepeatedTokens: Int
        /// The harness's own lag (p99 of send time − scheduled time) above which the run fails.
        package var maxClientLagMilliseconds: Double
        /// Failures of these OpenAI error codes do not count against the budget (e.g. `no_capacity_in_zone`).
        package var expectedErrors: Set<String>
    }

    /// Cars over all groups.
    package var carCount: Int { self.fleet.reduce(0) { $0 + $1.count } }
}
