public import AsyncHTTPClient
public import FleetGeo
public import FleetProtocol
public import FleetScheduler
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle
import Synchronization

/// Central data-centre capacity: OpenAI-compatible endpoints, each serving one region.
///
/// Models are discovered from each endpoint's `GET /models` (refreshed by ``run()``); an endpoint
/// that does not answer is not routed to until it does. Capacity is finite: each endpoint takes at
/// most ``Endpoint/maxConcurrent`` streams, so its use can be reported and it cannot absorb
/// everything silently.
public final class CentralDirectory: Service, Sendable {
    /// One endpoint as configured and as last seen.
    public struct Endpoint: Sendable, Hashable {
        public var region: String
        public var zone: String
        /// Base URL ending in `/v1`, e.g. `http://10.0.0.5:8000/v1`.
        public var baseURL: String
        public var maxConcurrent: Int
        /// Configured expectations: the prior of ``estimate``.
        public var expectedTTFTMilliseconds: Double = 300
        public var expectedTPOTMilliseconds: Double = 20
        /// What it can do when a stream moves to it mid-answer.
        public var continuation: ContinuationMode = .none
        /// What the gateway expects of this endpoint, learned from its outcomes (the configured
        /// figures until then).
        public var estimate = CentralEstimate()
        public var models: Set<String> = []
        public var healthy = false
        public var inFlight = 0
        /// Its failed attempts in a row and ejections (``CentralEjection``): out of rotation for a
        /// while after ``CentralDirectory/failuresToEject`` failures, then until a probe of its models answers.
        var ejection = CentralEjection()
        /// Failed attempts in a row since its last ejection or served attempt.
        public var consecutiveFailures: Int { self.ejection.failuresInARow }
        /// Until when the endpoint is left alone because it answered 429 or 503 (busy): for as long
        /// as its `Retry-After` asked, 1 s when it said nothing. Busy is not broken — it stays in
        /// rotation otherwise, its failures and estimate untouched.
        var busyUntil: NIODeadline?
        /// Since when its model list has gone unanswered, and when the log last said so.
        var silentSince: NIODeadline?
        var silenceLogged: NIODeadline?

        /// Out of rotation (three failures in a row), or no model list yet: probed until it answers.
        var isOut: Bool { !self.healthy || self.models.isEmpty }

        /// Whether it said it was busy and the time it asked for has not passed.
        func isBusy(at now: NIODeadline) -> Bool {
            guard let busyUntil else { return false }
            return now < busyUntil
        }
    }

    /// Failed attempts in a row that take an endpoint out of rotation (``CentralEjection``). One failure
    /// is not enough: one reset stream or one timeout under a burst took a healthy endpoint out for a
    /// whole refresh interval, and every request of its zone got 503 meanwhile (issue #19).
    public static let failuresToEject = CentralEjection.failuresToEject
    /// The longest an endpoint that answered busy is left alone, whatever its `Retry-After` asked (the
    /// client is still told that): a 429 may be one request's or one key's limit (a tokens-per-minute
    /// quota spent by one huge prompt), and in a zone with only central capacity every request is
    /// refused meanwhile. After it, the next request is sent and its answer decides.
    public static let maxBusySeconds = 30
    /// How soon an endpoint that is out (or has not listed its models yet) is asked again: after a
    /// central restart its models are back within this, not within a whole refresh interval.
    public static let probeInterval = Duration.seconds(1)
    /// How long past its ejection's end an endpoint is still expected back: two probes.
    static let readmissionGrace = TimeAmount.seconds(2 * CentralDirectory.probeInterval.components.seconds)

    private let endpoints: Mutex<[Endpoint]>
    let client: HTTPClient?
    let logger: Logger
    let refreshInterval: Duration

    /// Builds the directory from a configuration already checked by ``GatewayConfiguration/validate()``.
    init(
        configuration: GatewayConfiguration, client: HTTPClient?, logger: Logger,
        refreshInterval: Duration = .seconds(15)
    ) {
        var list: [Endpoint] = []
        for central in configuration.central.endpoints {
            guard let zone = configuration.regionMap.zone(ofRegion: central.region) else { continue }
            list.append(
                Endpoint(
                    region: central.region, zone: zone.id,
                    baseURL: central.baseURL.hasSuffix("/")
                        ? String(central.baseURL.dropLast()) : central.baseURL, maxConcurrent: central.maxConcurrent,
                    expectedTTFTMilliseconds: central.expectedTTFTMilliseconds,
                    expectedTPOTMilliseconds: central.expectedTPOTMilliseconds, continuation: central.continuation,
                    estimate: CentralEstimate(
                        baseTTFTMilliseconds: central.expectedTTFTMilliseconds,
                        tpotMilliseconds: central.expectedTPOTMilliseconds)))
            list[list.count - 1].estimate.cachesPrefixes = central.prefixCache
        }
        self.endpoints = Mutex(list)
        self.client = client
        self.logger = logger
        self.refreshInterval = refreshInterval
    }

    /// Every endpoint as last seen.
    public var all: [Endpoint] { self.endpoints.withLock { $0 } }

    /// Models served by healthy endpoints.
    public func models() -> Set<String> {
        self.endpoints.withLock { $0.filter(\.healthy).reduce(into: Set<String>()) { $0.formUnion($1.models) } }
    }

    /// Whether a healthy endpoint serves `model`: `models().contains(model)` without building
    /// the set (every request's validation; issue #19).
    public func serves(model: String) -> Bool {
        self.endpoints.withLock { $0.contains { $0.healthy && $0.models.contains(model) } }
    }

    /// Whether a healthy endpoint of `zone` serves `model` (a preferred zone's spill; not per request).
    public func serves(model: String, zone: String) -> Bool {
        self.endpoints.withLock { $0.contains { $0.zone == zone && $0.healthy && $0.models.contains(model) } }
    }

    /// Central capacity for the scheduler: the best TTFT predicted (learned from outcomes) for a
    /// prompt of `promptTokens` among the zone's healthy endpoints serving `model`, and whether
    /// any has a free stream for this attempt — not one of `excluding` (base URLs already tried), and
    /// able to continue when it is a `continuation`, as ``acquire(model:zone:preferring:excluding:continuation:now:)``
    /// requires (helper-76: a warming-up car was withheld for room central could not give); nil
    /// when the zone has none.
    func option(
        model: String, zone: String, promptTokens: Int = 1, excluding: [String] = [], continuation: Bool = false,
        now: NIODeadline = .now()
    ) -> CentralOption? {
        self.endpoints.withLock { list in
            // One pass, no array of the serving endpoints (every request's decision): the first
            // with the least predicted TTFT, and whether any has room.
            var best: Int?
            var bestTTFT = 0.0
            var hasRoom = false
            for index in list.indices {
                let endpoint = list[index]
                guard endpoint.zone == zone && endpoint.healthy && endpoint.models.contains(model) else { continue }
                hasRoom =
                    hasRoom
                    || (endpoint.inFlight < endpoint.maxConcurrent && !endpoint.isBusy(at: now)
                        && (!continuation || endpoint.continuation != .none)
                        && !excluding.contains(endpoint.baseURL))
                let ttft = endpoint.estimate.predict(promptTokens: promptTokens).ttft
                if best == nil || ttft < bestTTFT {
                    best = index
                    bestTTFT = ttft
                }
            }
            guard let best else { return nil }
            return list[best].estimate.option(promptTokens: promptTokens, hasRoom: hasRoom)
        }
    }

    /// Whether `zone` has healthy endpoints, whether any of them would take a stream now (under its
    /// `maxConcurrent`, not in the back-off a busy answer asked for), whatever the model; and when
    /// none would, the seconds until the first would again: 1 while one is only full, else until
    /// the soonest back-off ends (as ``busyRetryAfter(model:zone:now:)`` tells a routed request).
    func zoneRoom(_ zone: String, now: NIODeadline = .now()) -> (endpoints: Bool, room: Bool, retryAfter: Int) {
        self.endpoints.withLock { list in
            var endpoints = false
            var soonest: NIODeadline?
            var full = false
            for endpoint in list where endpoint.zone == zone && endpoint.healthy {
                endpoints = true
                if let until = endpoint.busyUntil, now < until {
                    soonest = min(soonest ?? until, until)
                } else if endpoint.inFlight < endpoint.maxConcurrent {
                    return (true, true, 1)
                } else {
                    full = true
                }
            }
            let retryAfter = full ? 1 : soonest.map { RetryAfter.seconds(until: $0, now: now) } ?? 1
            return (endpoints, false, retryAfter)
        }
    }

    /// Takes a slot on an endpoint in `zone` serving `model`, preferring `region`; nil when none can.
    /// A `continuation` takes only endpoints that can continue another upstream's answer; an endpoint
    /// that said it is busy is not taken until the time it asked for has passed.
    func acquire(
        model: String, zone: String, preferring region: String, excluding: [String], continuation: Bool = false,
        now: NIODeadline = .now()
    ) -> Endpoint? {
        self.endpoints.withLock { list in
            // One pass, no array of the eligible endpoints: the first with the least (not in
            // `region`, streams in flight).
            var best: (index: Int, rank: (Int, Int))?
            for i in list.indices {
                let e = list[i]
                guard
                    e.zone == zone && e.healthy && e.models.contains(model) && e.inFlight < e.maxConcurrent
                        && !excluding.contains(e.baseURL) && (!continuation || e.continuation != .none)
                        && !e.isBusy(at: now)
                else { continue }
                let rank = (e.region == region ? 0 : 1, e.inFlight)
                if let current = best, !(rank < current.rank) { continue }
                best = (i, rank)
            }
            guard let index = best?.index else { return nil }
            list[index].inFlight += 1
            return list[index]
        }
    }

    /// Returns a slot with the attempt's outcome, which the endpoint's estimate learns from;
    /// ``failuresToEject`` failures in a row take the endpoint out for a time that grows while it keeps
    /// failing, then until a probe answers (``CentralEjection``). A busy answer (429, 503) is neither: the
    /// endpoint is left alone for `busyFor` seconds, then taken again (the back-off its `Retry-After`
    /// asked for).
    /// - Parameters:
    ///   - endpoint: the endpoint ``acquire(model:zone:preferring:excluding:continuation:now:)`` returned.
    ///   - outcome: what the attempt showed.
    ///   - promptTokens: the gateway's estimate of the prompt (used when the outcome has no count).
    ///   - busyFor: seconds the endpoint asked to be left alone when it answered busy; nil otherwise.
    ///   - failure: the failed attempt's label (`error.type`), for the log line of an ejection.
    func release(
        _ endpoint: Endpoint, outcome: Outcome, promptTokens: Int, busyFor: Int? = nil, failure: String? = nil,
        now: NIODeadline = .now()
    ) {
        let news: (backingOff: Bool, ejection: CentralEjection.News) = self.endpoints.withLock { list in
            guard let i = list.firstIndex(where: { $0.baseURL == endpoint.baseURL }) else { return (false, .none) }
            list[i].inFlight = max(0, list[i].inFlight - 1)
            if let busyFor { return (Self.leaveAlone(&list[i], for: busyFor, now: now), .none) }
            list[i].estimate.observe(outcome, promptTokens: promptTokens)
            if !outcome.succeeded {
                let news = list[i].ejection.failed(at: now)
                if case .ejected = news { list[i].healthy = false }
                return (false, news)
            }
            // Served (a first token, or a whole answer); one cancelled before anything says nothing of it.
            guard outcome.ttftMilliseconds != nil || outcome.outputTokens > 0 else { return (false, .none) }
            return (false, list[i].ejection.served())
        }
        // Nearly always nothing to say: the line's fields are built only for a line (issue #19: built for
        // every stream, they cost ~12,000 instructions a central stream).
        guard news.backingOff || news.ejection != .none else { return }
        var metadata: Logger.Metadata = [
            "fleet.central": "\(Self.redacted(endpoint.baseURL))", "fleet.central.region": "\(endpoint.region)",
        ]
        if news.backingOff, let busyFor {
            metadata["fleet.retry_after_s"] = "\(busyFor)"
            self.logger.info("Central endpoint busy; left alone for the time it asked", metadata: metadata)
        }
        switch news.ejection {
        case .none: break
        case .ejected(let length, let ejections):
            metadata["fleet.central.out_seconds"] = "\(length.nanoseconds / 1_000_000_000)"
            metadata["fleet.central.ejections"] = "\(ejections)"
            metadata["error.type"] = "\(failure ?? "failed")"
            // The first of a run after three failures in a row; the next ones after one, on trial.
            self.logger.warning("Central endpoint failing; out of rotation", metadata: metadata)
        case .recovered(let ejections):
            metadata["fleet.central.ejections"] = "\(ejections)"
            self.logger.info("Central endpoint serves again after failing", metadata: metadata)
        }
    }

    /// While every endpoint of `zone` serving `model` that is out was taken out for its failures
    /// (``CentralEjection``) and is expected back, the seconds until the soonest may serve again; nil
    /// when the zone has none such. What a client refused meanwhile is told: capacity is expected back.
    func ejectedRetryAfter(model: String, zone: String, now: NIODeadline = .now()) -> Int? {
        self.endpoints.withLock { list in
            var soonest: Int?
            for endpoint in list where endpoint.zone == zone && endpoint.models.contains(model) && !endpoint.healthy {
                guard let seconds = endpoint.ejection.retryAfter(at: now, grace: Self.readmissionGrace) else {
                    continue
                }
                soonest = min(soonest ?? seconds, seconds)
            }
            return soonest
        }
    }

    /// Marks an endpoint busy for `seconds` (in 1…``maxBusySeconds``); a shorter wait than one it
    /// asked for before does not shorten that. Whether it was not busy until now.
    private static func leaveAlone(_ endpoint: inout Endpoint, for seconds: Int, now: NIODeadline) -> Bool {
        let wasBusy = endpoint.isBusy(at: now)
        let until = now + .seconds(Int64(min(max(1, seconds), Self.maxBusySeconds)))
        endpoint.busyUntil = max(endpoint.busyUntil ?? until, until)
        return !wasBusy
    }

    /// Seconds until the first of the zone's healthy endpoints serving `model` that said it is busy
    /// has room again (rounded up, at least 1); nil when one of them is not busy (or none serves it).
    /// What a client refused for the zone's busy central capacity is told to wait.
    func busyRetryAfter(model: String, zone: String, now: NIODeadline = .now()) -> Int? {
        self.endpoints.withLock { list in
            var soonest: NIODeadline?
            for endpoint in list where endpoint.zone == zone && endpoint.healthy && endpoint.models.contains(model) {
                guard let until = endpoint.busyUntil, now < until else { return nil }
                soonest = min(soonest ?? until, until)
            }
            return soonest.map { RetryAfter.seconds(until: $0, now: now) }
        }
    }

    /// Asks every endpoint for its models once, all at the same time: one that does not answer
    /// (a dropped SYN waits out the 5 s timeout) does not hold up the others' probes.
    public func refresh() async {
        guard let client = self.client else { return }
        await withTaskGroup(of: Void.self) { group in
            for endpoint in self.all {
                group.addTask { await self.probe(endpoint.baseURL, with: client) }
            }
        }
    }

    /// Asks one endpoint for its models, and records what it said.
    private func probe(_ baseURL: String, with client: HTTPClient) async {
        var models: Set<String>?
        var failure = ""
        do {
            var request = HTTPClientRequest(url: baseURL + "/models")
            request.method = .GET
            let response = try await client.execute(request, timeout: .seconds(5))
            if APIError.isBusy(status: Int(response.status.code)) {
                // A rate limiter or balancer in front answers every path: busy, not gone — the
                // models it listed stand, and it is left alone as a completion's busy answer asks.
                return self.probedBusy(baseURL, for: RetryAfter.seconds(in: response.headers) ?? 1)
            }
            if response.status == .ok {
                let body = try await response.body.collect(upTo: 1 << 20)
                models = Set(try JSON.decode(ModelList.self, from: body.readableBytesView).data.map(\.id))
            } else {
                failure = "HTTP \(response.status.code)"
            }
        } catch {
            failure = "\(type(of: error))"
        }
        if models?.isEmpty == true {
            failure = "empty model list"  // still out of rotation: nothing to serve with
        }
        let metadata: Logger.Metadata = ["fleet.central": "\(Self.redacted(baseURL))"]
        switch self.probed(baseURL, models: models) {
        case .unchanged: break
        case .silent:
            self.logger.warning(
                "Central endpoint does not list its models; out of rotation, probed every second",
                metadata: metadata.merging(["error.type": "\(failure)"]) { a, _ in a })
        case .stillSilent(let seconds):
            self.logger.warning(
                "Central endpoint still does not list its models",
                metadata: metadata.merging(["error.type": "\(failure)", "fleet.central.silent_seconds": "\(seconds)"]) {
                    a, _ in a
                })
        case .answering:
            self.logger.info("Central endpoint lists its models again", metadata: metadata)
        }
    }

    /// What a probe changed, for the log: one line when an endpoint stops listing its models, one a
    /// minute while it stays silent, one when it answers again (a dead endpoint logged every second).
    enum ProbeNews: Equatable {
        case unchanged
        case silent
        case stillSilent(seconds: Int)
        case answering
    }

    /// How often the log repeats that an endpoint is still silent.
    static let silenceReminder = TimeAmount.seconds(60)

    /// A probe of an endpoint's models was answered busy (429, 503): its health and models stay as
    /// they were, and it is left alone for `seconds`.
    func probedBusy(_ baseURL: String, for seconds: Int, now: NIODeadline = .now()) {
        self.endpoints.withLock { list in
            guard let i = list.firstIndex(where: { $0.baseURL == baseURL }) else { return }
            _ = Self.leaveAlone(&list[i], for: seconds, now: now)
        }
    }

    /// What a probe of an endpoint's models found: the list (the endpoint is back in rotation, unless
    /// its failed attempts took it out for a time not yet over), or nil when it did not answer (out of rotation).
    @discardableResult
    func probed(_ baseURL: String, models: Set<String>?, now: NIODeadline = .now()) -> ProbeNews {
        self.endpoints.withLock { list in
            guard let i = list.firstIndex(where: { $0.baseURL == baseURL }) else { return .unchanged }
            // An endpoint taken out for failing completions stays out its time, however its list answers.
            list[i].healthy = models != nil && !list[i].ejection.holdsOut(at: now)
            if let models { list[i].models = models }
            // A list with no model leaves it out of rotation, as silence does (helper-62).
            if let models, !models.isEmpty {
                defer { list[i].silentSince = nil }
                return list[i].silentSince == nil ? .unchanged : .answering
            }
            guard let since = list[i].silentSince, let logged = list[i].silenceLogged else {
                list[i].silentSince = now
                list[i].silenceLogged = now
                return .silent
            }
            guard now - logged >= Self.silenceReminder else { return .unchanged }
            list[i].silenceLogged = now
            return .stillSilent(seconds: Int((now - since).nanoseconds / 1_000_000_000))
        }
    }

    /// A base URL as logs, metrics, `/admin/config` and configuration errors show it: without a user or
    /// password, should one be written in it — also when the rest does not parse. Everything between the
    /// scheme's `://` (or the start) and the last `@` goes: a password may hold `/`, `?` or `#` (base64
    /// does), so the authority's end cannot be trusted to find it; an `@` in a path is removed with what
    /// precedes it (a label the less, never a secret the more).
    static func redacted(_ baseURL: String) -> String {
        guard let at = baseURL.lastIndex(of: "@") else { return baseURL }
        let start = baseURL.range(of: "://").map { $0.upperBound } ?? baseURL.startIndex
        guard start <= at else { return String(baseURL[baseURL.index(after: at)...]) }
        return String(baseURL[..<start]) + String(baseURL[baseURL.index(after: at)...])
    }

    /// Whether an endpoint is out of rotation or has not listed its models yet.
    /// One that answered its probe busy waits out the time it asked for.
    func needsProbe(at now: NIODeadline = .now()) -> Bool {
        self.endpoints.withLock { $0.contains { $0.isOut && !$0.isBusy(at: now) } }
    }

    /// Refreshes every ``refreshInterval`` until shutdown, and every ``probeInterval`` while an
    /// endpoint is out of rotation or has listed no models.
    public func run() async throws {
        let clock = ContinuousClock()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await self.refresh()
            let next = clock.now + self.refreshInterval
            repeat {
                try? await Task.sleep(for: min(Self.probeInterval, self.refreshInterval))
            } while clock.now < next && !self.needsProbe() && !Task.isCancelled && !Task.isShuttingDownGracefully
        }
    }
}
