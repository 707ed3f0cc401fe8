/// A run's JSON summary (`summary.json`), the single source of the HTML report's numbers.
package struct Summary: Codable, Sendable {
    /// Latency statistics of one group, from an HDR histogram (3 significant digits), milliseconds.
    package struct Stats: Codable, Sendable, Hashable {
        package var count: Int
        package var mean: Double
        package var p50: Double
        package var p90: Double
        package var p99: Double
        package var p999: Double
        package var max: Double
    }

    package struct Requests: Codable, Sendable {
        /// Planned over warm-up and measured window.
        package var planned: Int
        /// Sent in the measured window (the numbers below count these).
        package var measured: Int
        package var ok: Int
        package var failed: Int
        package var cancelled: Int
        /// Failures with an error code the scenario expects (e.g. `no_capacity_in_zone`).
        package var expectedFailures: Int
        /// Failures that count against the error budget ÷ measured.
        package var errorRate: Double
        /// Requests whose stream moved to another upstream before its first token (`x-fleet-attempts` > 1).
        package var retried: Int
        /// Requests whose stream moved mid-answer (`x-fleet-migrations` > 0).
        package var failedOver: Int
        package var tokens: Int
        /// Content tokens received per second over the measured window.
        package var tokensPerSecond: Double
        /// Requests sent per second over the measured window.
        package var streamsPerSecond: Double
    }

    /// Zone and text checks from the cars' job records and the clients' own reference text.
    package struct Checks: Codable, Sendable {
        /// Job records read (cars and central).
        package var jobRecords: Int
        /// Jobs served outside the client's strict zone (counted from job records against the client's origin).
        package var zoneViolations: Int
        /// Jobs served outside a preferred zone (allowed by the map; reported).
        package var outsidePreferredZone: Int
        /// Answered requests (status 200) with no job record at all.
        package var unrecorded: Int
        /// Requests whose text lost, repeated or corrupted a token (client-side reference check).
        package var lostTokens: Int
        package var repeatedTokens: Int
        package var corruptText: Int
        /// Completed requests whose job records leave a gap in token indices (a continuation started too late).
        package var recordGaps: Int
    }

    package struct Process: Codable, Sendable {
        package var cpuSeconds: Double
        package var peakRSS: Int
        package var samples: [ProcessSampler.Sample]
    }

    /// One second of the run (measured window and warm-up), by send time.
    package struct Second: Codable, Sendable, Hashable {
        package var t: Int
        package var sent: Int
        package var ok: Int
        package var failed: Int
        package var tokens: Int
    }

    /// One measured request, for the latency-over-time plot and the CDFs.
    package struct Point: Codable, Sendable, Hashable {
        /// Seconds after the start of load.
        package var t: Double
        /// Time to first token (ms); nil when none arrived.
        package var ttft: Double?
        package var total: Double?
        package var route: String
        package var zone: String
        package var outcome: String
    }

    package struct ChurnMark: Codable, Sendable, Hashable {
        package var t: Double
        package var kind: String
        package var car: Int

        package init(t: Double, kind: String, car: Int) {
            self.t = t
            self.kind = kind
            self.car = car
        }
    }

    package struct Check: Codable, Sendable, Hashable {
        package var name: String
        package var limit: Double
        package var value: Double
        package var passed: Bool
    }

    /// Where the load broke: 5-second windows by send time, the first whose unexpected failures
    /// exceed the error budget or whose TTFT p99 exceeds the objective (`x-slo-ttft-ms`, if sent).
    package struct Knee: Codable, Sendable, Hashable {
        /// Requests/s sent in the first window that broke (nil: none broke).
        package var streamsPerSecond: Double?
        /// The highest rate of a window before it that held.
        package var lastGoodStreamsPerSecond: Double?
        /// Why the window broke.
        package var reason: String?
        /// Seconds after the start of load of that window.
        package var at: Double?
    }

    /// Later turns of conversations (`clients.multiTurnShare`), each carrying the answers its
    /// client received. The gateway exposes no prefix-cache hit count, so the harness counts, from
    /// the job records, the later turns whose first job ran on the car (or central) that ran the
    /// previous turn's last job. The synthetic engine's hello declares no prompt cache, so the
    /// gateway credits no affinity to a simulated car: this is the chance level with them.
    package struct Conversations: Codable, Sendable, Hashable {
        package var laterTurns = 0
        /// Later turns answered (status 200) with a job record for them and for the previous turn.
        package var answered = 0
        package var onPreviousCar = 0
        package init() {}
    }

    /// The gateway's resident set before any car dialled and once every car was registered and idle,
    /// with the steps between (the fleet starts in steps: a tenth, half, all).
    package struct IdleMemory: Codable, Sendable, Hashable {
        /// Idle tunnels registered at one step, and the gateway's RSS once they settled.
        package struct Step: Codable, Sendable, Hashable {
            package var tunnels: Int
            package var rss: Int
            package init(tunnels: Int, rss: Int) {
                self.tunnels = tunnels
                self.rss = rss
            }
        }

        package var rssBefore: Int
        package var rssWithCars: Int
        package var tunnels: Int
        /// (with cars − before) ÷ tunnels.
        package var bytesPerTunnel: Int
        package var steps: [Step]
        /// RSS difference ÷ tunnel difference between the first step and the last: what one more idle
        /// tunnel costs, without what only the first tunnels pay (tables and arenas growing). Nil with
        /// one step.
        package var marginalBytesPerTunnel: Int?

        /// - Parameter steps: in the order taken; the last one is the whole fleet.
        package init(rssBefore: Int, steps: [Step]) {
            let last = steps.last ?? Step(tunnels: 0, rss: rssBefore)
            self.rssBefore = rssBefore
            self.rssWithCars = last.rss
            self.tunnels = last.tunnels
            self.bytesPerTunnel = last.tunnels > 0 ? (last.rss - rssBefore) / last.tunnels : 0
            self.steps = steps
            if let first = steps.first, last.tunnels > first.tunnels {
                self.marginalBytesPerTunnel = (last.rss - first.rss) / (last.tunnels - first.tunnels)
            }
        }
    }

    package var scenario: String
    package var file: String
    package var seed: UInt64
    /// ISO 8601 start time.
    package var started: String
    /// `/proc/loadavg` at the start and the end.
    package var loadAverage: [[Double]]
    package var warmupSeconds: Double
    package var durationSeconds: Double
    package var cars: Int
    package var carsRegistered: Int
    package var tunnelTLS: Bool
    package var requests: Requests
    /// Error code → count (measured window).
    package var errors: [String: Int]
    /// Metric (`ttft`, `gap`, `total`) → group (`all`, `route=car`, `zone=eu`, `model=…`, `hardware=…`) → stats.
    package var latency: [String: [String: Stats]]
    /// Gap (ms) between the last token before and the first after a mid-stream move, per moved request.
    package var failoverGap: Stats?
    package var checks: Checks
    package var gateway: Process
    package var conversations: Conversations?
    /// The harness's lag sending requests (ms): if it fell behind, latency would be under-reported.
    package var clientLag: Stats
    /// The lateness of a 100 ms timer on the cars' event loop (ms): past the gateway's PING deadline
    /// (two missed PINGs, 2 s while busy) the cars look dead, and a run measures the harness.
    package var carLoopLag: Stats
    package var timeline: [Second]
    package var churn: [ChurnMark]
    package var points: [Point]
    package var knee: Knee
    package var idleMemory: IdleMemory?
    package var invariants: [Check]
    package var passed: Bool
}
