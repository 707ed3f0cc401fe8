public import AsyncHTTPClient
import CoreMetrics
import Crypto
import FleetConfiguration
public import FleetGeo
import FleetHTTP2
public import FleetScheduler
import Foundation
public import Logging
import NIOCore
import NIOSSL
import Synchronization

/// What every request and tunnel handler shares: configuration, the fleet, geo and metrics.
public final class GatewayCore: Sendable {
    /// The running configuration. A reload swaps it whole (``apply(_:)``), so a request that reads
    /// it once sees one consistent version; keys that need a restart keep their start values.
    /// (One lock and one retain of the snapshot; the struct itself is not copied under the lock.)
    public var configuration: GatewayConfiguration { self.live.withLock { $0 }.configuration }
    /// The running configuration's snapshot: `liveConfiguration.configuration.key` reads one key
    /// without copying the struct, which ``configuration`` bound to a local does (~1,800
    /// instructions for its ~35 references; issue #19).
    var liveConfiguration: Live { self.live.withLock { $0 } }
    public let registry: FleetRegistry
    public let tunnels: TunnelTable
    public let credentials: FleetCredentials
    /// The live region map and database (hot-reloadable).
    public let geo: GeoState
    /// Which peers' `X-Forwarded-For` is believed (`geo.trustedProxies`, swapped by a reload).
    public var clientAddresses: ClientAddressResolver { self.liveConfiguration.clientAddresses }
    public let metrics: GatewayMetrics
    public let logger: Logger
    /// Central capacity.
    public let central: CentralDirectory
    /// async-http-client: central's `GET /models`, audits, and the streams of a central base URL the
    /// gateway's own client does not take (`CentralFallbackUpstream`); nil when neither central
    /// capacity nor audits are configured.
    public let httpClient: HTTPClient?
    /// The gateway's own HTTP/1.1 clients for central endpoints (issue #19).
    let centralClients: CentralClients
    /// Keyed hashes of conversation prefixes (a key per process, never exported); nil when
    /// prefix-cache affinity is off, so the request path hashes nothing.
    let prefixHasher: PrefixHasher?
    /// The other replicas (issue #21); nil when `cluster.etcdEndpoints` is empty (the default).
    public let cluster: ClusterView?
    /// Issue #20: revocations and quarantines.
    public let trust: FleetTrust
    /// Issue #20: audits of car results on trusted capacity; nil when no audit endpoint is configured.
    public let auditor: Auditor?
    /// Lost streams waiting for a slot, which new work yields to.
    package let capacityWaiters = CapacityWaiters()

    init(
        configuration: GatewayConfiguration, credentials: FleetCredentials, metrics: GatewayMetrics,
        httpClient: HTTPClient?, centralTLS: NIOSSLContext? = nil,
        logger: Logger
    ) throws {
        self.centralClients = CentralClients(tls: centralTLS)
        let live = Live(configuration: configuration)
        self.live = Mutex(live)
        self.corsEnabled.store(live.cors.isEnabled, ordering: .relaxed)
        self.keys = try AppKeys(
            configuration: configuration, metrics: metrics, logger: logger,
            now: Double(NIODeadline.now().uptimeNanoseconds) / 1e9)
        self.httpClient = httpClient
        self.cluster =
            configuration.cluster.enabled
            ? ClusterView(
                configuration: configuration.cluster, fleetSecret: configuration.fleetSecret, factory: metrics.factory)
            : nil
        self.central = CentralDirectory(configuration: configuration, client: httpClient, logger: logger)
        self.registry = FleetRegistry(
            policy: configuration.schedulingPolicy,
            affinity: PrefixAffinity(
                enabled: configuration.dispatch.affinity, entriesPerPool: configuration.dispatch.affinityEntries,
                ttlSeconds: Double(configuration.dispatch.affinityTTL.nanoseconds) / 1e9))
        self.prefixHasher = configuration.dispatch.affinity ? PrefixHasher() : nil
        self.tunnels = TunnelTable()
        self.credentials = credentials
        do {
            self.geo = try GeoState(
                map: configuration.regionMap, regionsFile: configuration.regionsFile,
                databaseFile: configuration.geoipDatabase,
                logger: logger)
        } catch {
            throw ConfigurationError(
                .invalidValue, key: "geo.databaseFile", value: configuration.geo.databaseFile, "\(error)", cause: error)
        }
        metrics.regionMapInstalled(version: self.geo.current.map.version)
        if let database = self.geo.current.database {
            logger.info(
                "GeoIP database loaded",
                metadata: [
                    "fleet.geoip.path": "\(database.path)", "fleet.geoip.type": "\(database.databaseType)",
                    "fleet.geoip.built":
                        "\(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(database.buildEpoch))))",
                ])
        } else {
            logger.warning("No GeoIP database: every public address gets the map's noDatabase region")
        }
        _ = try Self.blocks(configuration.geo.trustedProxies, key: "geo.trustedProxies")  // ``Live`` takes them
        self.proxyProtocolFrom = try Self.blocks(
            configuration.listeners.client.proxyProtocolFrom, key: "listeners.client.proxyProtocolFrom")
        self.tlsProxyProtocolFrom = try Self.blocks(
            configuration.listeners.tls.proxyProtocolFrom, key: "listeners.tls.proxyProtocolFrom")
        self.metrics = metrics
        self.logger = logger
        self.hedgeBudget = HedgeBudget(ratio: configuration.hedgeBudget)
        let trust = FleetTrust(
            revocationFile: configuration.tunnel.revocationFile, quarantineFile: configuration.audit.quarantineFile,
            sharesQuarantines: !configuration.cluster.etcdEndpoints.isEmpty,
            metrics: TrustMetrics(factory: metrics.factory), logger: logger)
        self.trust = trust
        self.auditor =
            configuration.audit.endpoints.isEmpty || httpClient == nil
            ? nil
            : Auditor(
                configuration: configuration.audit, regionMap: configuration.regionMap, client: httpClient!,
                trust: trust, logger: logger)
        self.auditor?.whenQuarantined { [weak self] in self?.enforceTrust() }
    }

    /// Issue #20: asks every connected car's session to check it may still serve (after a
    /// revocation reload, or a quarantine); untrusted ones are told `quarantine` and closed.
    func enforceTrust() {
        for tunnel in self.tunnels.all {
            tunnel.execute { handler in (handler.delegate as? CarSession)?.enforceTrust() }
        }
    }

    /// After a region map reload: cars whose region the map no longer has drain and leave
    /// (``CarSession/leaveIfRegionRemoved()``).
    func retireCarsOutsideMap() {
        for tunnel in self.tunnels.all {
            tunnel.execute { handler in (handler.delegate as? CarSession)?.leaveIfRegionRemoved() }
        }
    }

    /// Parses CIDR blocks; the error names the key and the value.
    static func blocks(_ texts: [String], key: String) throws -> [CIDR] {
        try texts.map { text in
            guard let cidr = CIDR(text) else {
                throw ConfigurationError(.invalidValue, key: key, value: text, "is not an address or CIDR block")
            }
            return cidr
        }
    }

    /// Load balancers allowed to send PROXY protocol on the cleartext and TLS client ports.
    let proxyProtocolFrom: [CIDR]
    let tlsProxyProtocolFrom: [CIDR]

    /// Whether a connection from `peer` must begin with a PROXY protocol header: only when the
    /// socket peer is one of the configured load balancers (issue #18 row 1).
    static func expectsProxyProtocol(from peer: SocketAddress?, ranges: [CIDR]) -> Bool {
        guard !ranges.isEmpty, let ip = peer?.ipAddress, let address = IPAddress(ip) else { return false }
        return ranges.contains { $0.contains(address) }
    }

    private let inFlight = Atomic<Int>(0)

    /// What a reload swaps: the configuration (immutable; replaced whole).
    final class Live: Sendable {
        let configuration: GatewayConfiguration
        /// Which browser pages may call the client API (`auth.corsOrigins`).
        let cors: CORSPolicy
        /// Which peers' `X-Forwarded-For` is believed (`geo.trustedProxies`, each checked by
        /// ``GatewayConfiguration/validate()`` before it gets here; helper-106: documented reloadable,
        /// the start's list stayed in use).
        let clientAddresses: ClientAddressResolver
        init(configuration: GatewayConfiguration) {
            self.configuration = configuration
            self.cors = CORSPolicy(allowedOrigins: configuration.auth.corsOrigins)
            self.clientAddresses = ClientAddressResolver(
                trusted: configuration.geo.trustedProxies.compactMap(CIDR.init))
        }
    }
    private let live: Mutex<Live>
    /// Whether `auth.corsOrigins` is set, kept beside ``liveConfiguration`` for the HTTP/2 early
    /// refusal's question on every request's header block, which must not take the lock.
    let corsEnabled = Atomic<Bool>(false)
    /// Which takeovers of a car's open tunnel are logged (``KeyedWarnings``).
    let takeoverWarnings = KeyedWarnings()
    /// Which refusals of a car are logged at warning level, by peer address (``KeyedWarnings``).
    let rejectionWarnings = KeyedWarnings()
    /// The connected cars' credential expiries (``CredentialExpiries``).
    let credentialExpiries = CredentialExpiries()

    /// Application keys and their quotas. Keys are held only as SHA-256 digests and looked up by
    /// digest, so no comparison runs over a secret.
    public let keys: AppKeys

    /// Swaps in a reloaded configuration (limits, timeouts, objectives, API keys) at once.
    func apply(_ configuration: GatewayConfiguration) {
        let live = Live(configuration: configuration)
        self.live.withLock { $0 = live }
        self.corsEnabled.store(live.cors.isEnabled, ordering: .relaxed)
        self.keys.replaceStaticKeys(configuration.auth, now: self.now)
        self.auditor?.apply(configuration.audit)
    }

    /// Whether an `Authorization` header carries an accepted key (always true when none are configured).
    func isAuthorized(_ authorization: String?) -> Bool { self.keys.authenticate(authorization) }

    /// Reloads the application key file, logging the outcome.
    package func reloadKeys() throws(KeyFileError) -> Int {
        do {
            let count = try self.keys.reload(now: self.now)
            // Named as the key is, not "key file": the API key file (auth.apiKeysFile) is another (helper-82).
            if let file = self.keys.file {
                self.logger.info(
                    "Application key file reloaded", metadata: ["fleet.keys": "\(count)", "file.path": "\(file)"])
            } else {
                // Every SIGHUP says so; at info it sat beside a refused reload's error as if something had
                // been reloaded (helper-101).
                self.logger.debug(
                    "No application key file (auth.appKeysFile) to reload", metadata: ["fleet.keys": "\(count)"])
            }
            return count
        } catch {
            self.logger.error(
                "Application key file reload refused; the running keys stay", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// Admits one more completion request unless ``GatewayConfiguration/maxInFlightRequests`` are running.
    func admitRequest() -> Bool {
        let now = self.inFlight.wrappingAdd(1, ordering: .relaxed).newValue
        if now > self.configuration.maxInFlightRequests {
            self.inFlight.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Ends an admitted request.
    func requestEnded() { self.inFlight.wrappingSubtract(1, ordering: .relaxed) }

    /// Completion requests in flight.
    public var requestsInFlight: Int { self.inFlight.load(ordering: .relaxed) }

    /// Request-body bytes held now, over all requests (``GatewayConfiguration/Limits/maxBufferedBodyBytes``).
    private let bufferedBodyBytes = Atomic<Int>(0)

    /// Reserves `bytes` of request body against the global bound; false (nothing reserved) past it.
    func reserveBody(_ bytes: Int) -> Bool {
        let total = self.bufferedBodyBytes.wrappingAdd(bytes, ordering: .relaxed).newValue
        if total > self.configuration.limits.maxBufferedBodyBytes {
            self.bufferedBodyBytes.wrappingSubtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Returns reserved request-body bytes.
    func releaseBody(_ bytes: Int) {
        if bytes > 0 { self.bufferedBodyBytes.wrappingSubtract(bytes, ordering: .relaxed) }
    }

    /// Request-body bytes held now.
    public var requestBodyBytesHeld: Int { self.bufferedBodyBytes.load(ordering: .relaxed) }

    /// Answer bytes held for slow clients now, over all streams (``Dispatcher/holdForSlowClient(_:)``).
    private let heldAnswerBytes = Atomic<Int>(0)

    /// Counts `bytes` of answer held for a slow client; false (nothing counted) past `limit`.
    func reserveAnswer(_ bytes: Int, limit: Int) -> Bool {
        let total = self.heldAnswerBytes.wrappingAdd(bytes, ordering: .relaxed).newValue
        if total > limit {
            self.heldAnswerBytes.wrappingSubtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Stops counting answer bytes the client's stream no longer holds.
    func releaseAnswer(_ bytes: Int) { self.heldAnswerBytes.wrappingSubtract(bytes, ordering: .relaxed) }

    /// Answer bytes held for slow clients now.
    public var answerBytesHeld: Int { self.heldAnswerBytes.load(ordering: .relaxed) }

    /// The gateway-wide hedge budget.
    let hedgeBudget: HedgeBudget

    /// #17: the routing decisions the admin dashboard shows.
    let decisions = RecentDecisions()

    /// When a zone was last found without room for any request (uptime nanoseconds; 0: never): for
    /// a second after, requests' heads are checked for it (``saturatedZone(of:connection:)``).
    let busyZoneSeen = Atomic<UInt64>(0)
    /// The zone found without room then.
    let busyZone = Mutex<String>("")

    /// How many requests refused after routing because their zone was busy (503 `server_overloaded`)
    /// get their own `Request served` line: as a loop's refusals on the header block have none, at
    /// twice capacity these would be ten thousand lines a second (issue #19: 6 % of the loop).
    let busyRefusalLog = RefusalLogBudget(now: Double(NIODeadline.now().uptimeNanoseconds) / 1e9)

    /// When shutdown began (uptime nanoseconds; 0: it has not), set once: a car that registers after
    /// the drain's `reconnect` went out is told at once (``CarSession``), or it would serve here until
    /// the tunnel closed.
    private let drainStarted = Atomic<UInt64>(0)

    /// Shutdown began (see ``drainStarted``).
    var isDraining: Bool { self.drainStarted.load(ordering: .sequentiallyConsistent) != 0 }

    /// Shutdown began, and its grace (`limits.clientHTTP2.gracefulShutdownTimeoutSeconds`) is over:
    /// connections still open are being closed by the gateway, not by their clients.
    var drainGraceOver: Bool {
        let started = self.drainStarted.load(ordering: .sequentiallyConsistent)
        guard started != 0 else { return false }
        let grace = UInt64(max(0, self.configuration.limits.clientHTTP2.gracefulShutdownTimeout.nanoseconds))
        return NIODeadline.now().uptimeNanoseconds >= started &+ grace
    }

    /// Marks shutdown as begun, before the drain's `reconnect` goes out.
    func beginDraining() {
        _ = self.drainStarted.compareExchange(
            expected: 0, desired: NIODeadline.now().uptimeNanoseconds, ordering: .sequentiallyConsistent)
    }

    /// Models served recently, with when they were last seen: a model whose cars all left a
    /// moment ago is answered 503 `no_capacity_in_zone`, not 404 `model_not_found` (bounded).
    private let recentModels = Mutex<[String: Double]>([:])
    /// How long a model is remembered after its last car or endpoint went.
    static let modelMemorySeconds: Double = 600

    /// Remembers that `models` are served now.
    func rememberModels(_ models: some Sequence<String>) {
        let now = self.now
        self.recentModels.withLock { memory in
            for model in models where memory.count < 4_096 || memory[model] != nil { memory[model] = now }
            if memory.count >= 4_096 { memory = memory.filter { now - $0.value < Self.modelMemorySeconds } }
        }
    }

    /// Whether `zone` has capacity for `model` at all — a connected car, a healthy central endpoint,
    /// or (cluster #21) another replica's car — busy or not: a `preferred` zone without any spills.
    /// `replicas`: whether other replicas' cars count (for the origin's zone, whose requests are
    /// forwarded to them; not for a zone spilled into, which this replica serves itself).
    func hasCapacity(model: String, zone: String, replicas: Bool = true) -> Bool {
        self.registry.serves(model: model, zone: zone) || self.central.serves(model: model, zone: zone)
            || (replicas && self.cluster?.hasCapacity(zone: zone, model: model, now: self.now) ?? false)
    }

    /// The zone a request of `origin` is served in: its own, or — when its zone is `preferred`
    /// (docs/regions.md) and has no capacity for `model` — the nearest other zone that has
    /// (``RegionMap/spillZones(from:)``), counted in `fleet_zone_spills_total`. A `strict` zone is
    /// never left; nor is one the client named with `x-fleet-residency`.
    func servingZone(of origin: Origin, model: String, pinned: Bool) -> String {
        // `spills`: the resolver's mark, so a strict zone's request (most) looks at nothing here. The
        // map that spills is asked again: a reload may have made the zone strict since (helper-66).
        guard !pinned, origin.spills, !self.hasCapacity(model: model, zone: origin.zone) else { return origin.zone }
        let map = self.geo.current.map
        guard map.zones[origin.zone]?.residency == .preferred,
            let spill = map.spillZones(from: origin.region).first(where: {
                self.hasCapacity(model: model, zone: $0, replicas: false)
            })
        else { return origin.zone }
        self.metrics.fleetState.zoneSpilled(from: origin.zone, to: spill)
        return spill
    }

    /// Whether a car or a central endpoint serves `model` now — here, or (cluster #21) on another
    /// replica's cars, to which requests are forwarded — or did within the last ten minutes.
    func serves(model: String) -> Bool {
        if self.registry.serves(model: model) || self.central.serves(model: model)
            || self.cluster?.serves(model: model, now: self.now) == true
        {
            self.rememberModels(CollectionOfOne(model))
            return true
        }
        let now = self.now
        return self.recentModels.withLock { $0[model].map { now - $0 < Self.modelMemorySeconds } ?? false }
    }

    /// Seconds on a monotonic clock, for the registry's back-off.
    var now: Double { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }

    /// Publishes the connected-car gauge for one region.
    func publishCarCount(region: String) {
        self.metrics.carsConnected(region: region, count: self.registry.count(region: region))
    }
}
