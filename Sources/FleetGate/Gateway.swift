import AsyncHTTPClient
import CoreMetrics
public import FleetConfiguration
public import FleetHTTP2
import FleetProtocol
import FleetScheduler
public import Logging
public import NIOCore
import NIOPosix
import NIOSSL
public import Prometheus
public import ServiceLifecycle
import UnixSignals

/// The gateway: client, TLS, tunnel and admin listeners over one fleet registry, as one `Service`.
///
/// Like hummingbird's `Application`, it runs inside a caller's `ServiceGroup` (``run()``) or
/// as the whole program (``runService()``: SIGTERM/SIGINT drain, SIGHUP reloads):
/// ```swift
/// let gateway = try Gateway(configuration: configuration, logger: logger)
/// try await gateway.runService()
/// ```
public final class Gateway: Service, Sendable {
    /// Shared state of every handler.
    public let core: GatewayCore
    /// The Prometheus registry behind `/metrics`.
    public let prometheus: PrometheusCollectorRegistry
    public let clientListener: HTTPServer
    public let tunnelListener: HTTPServer
    public let adminListener: HTTPServer
    /// The TLS client listener, when TLS is configured.
    public let tlsListener: HTTPServer?
    /// The read-only probes listener, when ``GatewayConfiguration/Admin/probesHost`` is set.
    public let probesListener: HTTPServer?
    /// The internal listener other replicas forward to, and the service keeping this replica in
    /// etcd (issue #21); nil when clustering is off.
    public let internalListener: HTTPServer?
    let clusterService: ClusterService?
    /// #17: logins to the admin dashboard.
    public let dashboard: DashboardSessions
    public let readiness: Readiness
    /// Every event loop's admission state (issue #19: overload without collapse).
    let loads: EventLoopLoads
    /// Reloads what can change while running (SIGHUP, `POST /admin/reload`).
    public let reloader: GatewayReloader
    /// The loop SIGHUP's reloads answer on.
    let signalLoop: any EventLoop
    let logger: Logger

    /// Builds the gateway; nothing binds until it runs.
    /// - Parameters:
    ///   - group: event loops; by default a group of ``GatewayConfiguration/eventLoopThreads`` threads
    ///     (one per core when 0).
    ///   - logLevel: the process's log level control, changed by reloads; nil leaves logging alone.
    ///   - reloadSource: reads the configuration again on reload (the same command line, environment and
    ///     file); nil re-reads only the region map and GeoIP database files.
    /// - Throws: ``ConfigurationError`` for invalid configuration, naming the key and value.
    public init(
        configuration: GatewayConfiguration, group: (any EventLoopGroup)? = nil, logger: Logger,
        logLevel: LogLevelControl? = nil,
        reloadSource: (@Sendable () throws -> GatewayConfiguration)? = nil
    ) throws {
        try configuration.validate()
        try configuration.validateTrust()
        // Everything that can throw comes before the first listener is made: a listener dropped unbound
        // leaks its promise (helper-70: a short admin token file crashed a debug build).
        let guardrail = try AdminGuard(
            tokenFile: configuration.admin.tokenFile, bindHost: configuration.admin.host,
            allowedHosts: configuration.admin.allowedHosts)
        let group =
            group
            ?? MultiThreadedEventLoopGroup(
                numberOfThreads: configuration.eventLoopThreads == 0
                    ? System.coreCount : configuration.eventLoopThreads)
        let prometheus = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: prometheus)
        factory.durationHistogramBuckets[GenAIMetrics.Name.ttft] = GenAIMetrics.ttftBuckets
        factory.durationHistogramBuckets[GenAIMetrics.Name.tpot] = GenAIMetrics.tpotBuckets
        factory.durationHistogramBuckets[GenAIMetrics.Name.duration] = GenAIMetrics.durationBuckets
        factory.valueHistogramBuckets[GenAIMetrics.Name.tokens] = GenAIMetrics.tokenBuckets
        factory.valueHistogramBuckets[GatewayMetrics.Name.interToken] = SecondsHistogram.buckets
        factory.valueHistogramBuckets[GatewayMetrics.Name.predictionRatio] = GatewayMetrics.ratioBuckets
        let metrics = GatewayMetrics(factory: factory, policy: configuration.schedulingPolicy)
        let credentials = try FleetCredentials(secret: configuration.fleetSecret)
        let clientTLS = TLSContextBox(try Self.clientContext(configuration))
        let tunnelTLS = TLSContextBox(try Self.tunnelContext(configuration))
        let centralTLS = try Self.centralTLSConfiguration(configuration)
        // Created last, after every check that can throw: an HTTPClient must be shut down before it is released.
        // async-http-client asks central for its models and runs audits; central streams go through
        // the gateway's own client (CentralClients) but for a base URL it does not take. Its pool keeps
        // as many HTTP/1.1 connections per endpoint as central takes streams at once: above its default
        // soft limit (8) every request opened and closed a connection of its own (issue #19).
        var clientConfiguration = HTTPClient.Configuration(
            tlsConfiguration: centralTLS?.configuration, timeout: .init(connect: .seconds(5)))
        clientConfiguration.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.central.endpoints.map(\.maxConcurrent).max() ?? 8)
        // A refused connection fails the attempt at once: the dispatcher retries elsewhere, where
        // async-http-client's own retries held the request until the first-token deadline (15 s).
        clientConfiguration.connectionPool.retryConnectionEstablishment = false
        let httpClient =
            configuration.central.endpoints.isEmpty && configuration.audit.endpoints.isEmpty
            ? nil : HTTPClient(eventLoopGroup: group, configuration: clientConfiguration)
        let core = try GatewayCore(
            configuration: configuration, credentials: credentials, metrics: metrics, httpClient: httpClient,
            centralTLS: centralTLS?.context, logger: logger)
        let hasTLS = configuration.listeners.tls.files != nil
        let readiness = Readiness(
            expected: 3 + (hasTLS ? 1 : 0) + (configuration.admin.probesHost == nil ? 0 : 1)
                + (core.cluster == nil ? 0 : 1))
        self.core = core
        self.prometheus = prometheus
        self.readiness = readiness
        self.logger = logger
        self.reloader = GatewayReloader(
            core: core, clientTLS: clientTLS, tunnelTLS: tunnelTLS, logLevel: logLevel, source: reloadSource,
            adminToken: guardrail.token)
        self.signalLoop = group.any()

        let listeners = configuration.listeners
        let fallback = configuration.fallbackToFreePorts
        let onBound: @Sendable (SocketAddress) -> Void = { _ in readiness.listenerBound() }
        // issue #19: each event loop sheds new requests while it runs behind (LoadShedder).
        let loads = EventLoopLoads(group: group, logger: logger) { [core] in core.configuration.limits.shedding }
        self.loads = loads
        let api = APIResponder(core: core, loads: loads)
        if let cluster = core.cluster {
            self.internalListener = HTTPServer(
                name: "internal", host: configuration.cluster.internalHost, port: configuration.cluster.internalPort,
                group: group, logger: logger, fallbackToAnyPort: fallback,
                onBound: { address in
                    cluster.internalListenerBound(port: address.port ?? 0)
                    readiness.listenerBound()
                },
                configurator: .http(responder: api, http2: { core.configuration.limits.clientHTTP2 }))
            self.clusterService = ClusterService(core: core, view: cluster, group: group, logger: logger)
        } else {
            self.internalListener = nil
            self.clusterService = nil
        }
        self.clientListener = HTTPServer(
            name: "client", host: listeners.host, port: listeners.client.port, group: group, logger: logger,
            fallbackToAnyPort: fallback, onBound: onBound,
            configurator: .http(
                responder: api, http2: { core.configuration.limits.clientHTTP2 },
                proxyProtocol: {
                    GatewayCore.expectsProxyProtocol(from: $0.remoteAddress, ranges: core.proxyProtocolFrom)
                }
            ))
        self.tlsListener =
            hasTLS
            ? HTTPServer(
                name: "client-tls", host: listeners.host, port: listeners.tls.port, group: group, logger: logger,
                fallbackToAnyPort: fallback, onBound: onBound,
                configurator: .http(
                    responder: api, http2: { core.configuration.limits.clientHTTP2 }, tls: { clientTLS.context },
                    proxyProtocol: {
                        GatewayCore.expectsProxyProtocol(from: $0.remoteAddress, ranges: core.tlsProxyProtocolFrom)
                    }))
            : nil
        let allowCleartext = listeners.tunnel.allowCleartext
        self.tunnelListener = HTTPServer(
            name: "tunnel", host: listeners.host, port: listeners.tunnel.port, group: group, logger: logger,
            fallbackToAnyPort: fallback,
            onBound: { address in
                core.cluster?.tunnelListenerBound(address)  // cars of other replicas are told it (#21)
                readiness.listenerBound()
            },
            configurator: .init { channel in
                let tls = tunnelTLS.context
                if let tls {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                } else if !allowCleartext, let ip = channel.remoteAddress?.ipAddress, !Self.isLoopback(ip) {
                    // Cleartext tunnels only on loopback (development); production tunnels arrive over TLS.
                    channel.close(promise: nil)
                    return
                }
                let handler = try HTTPServerPipeline.addHTTP2(
                    channel, role: .client, configuration: core.configuration.limits.tunnelHTTP2,
                    httpProtocol: tls == nil ? "h2c" : "h2", isTLS: tls != nil)
                CarSession(core: core, handle: HTTP2ConnectionHandle(handler, channel: channel)).start()
            })
        if guardrail.token == nil {
            logger.warning("No admin token file: the admin API is open to anyone who can reach its port")
        }
        // helper-70: two development settings ran in silence.
        if !configuration.auth.requiresKeys {
            logger.warning(
                "No API keys (auth.apiKeysFile): the client API serves anyone who can reach its port")
        }
        if configuration.tunnel.auth == .token {
            logger.warning(
                "Cars authenticate with bearer tokens (tunnel.auth: token), which is for development: production cars use certificates from the fleet CA (docs/security.md)"
            )
        }
        // #17: the dashboard logs in with the admin token (admin.tokenFile), or one generated here and
        // left in a file only this user can read (``run()`` writes it and logs its path, not the token).
        let dashboard = DashboardSessions(token: guardrail.token)
        self.dashboard = dashboard
        let admin = AdminResponder(
            core: core, prometheus: prometheus, readiness: readiness, reloader: self.reloader, guardrail: guardrail,
            dashboard: dashboard)
        self.adminListener = HTTPServer(
            name: "admin", host: configuration.admin.host, port: configuration.admin.port, group: group,
            logger: logger, fallbackToAnyPort: fallback, onBound: onBound, configurator: .http(responder: admin))
        if let probesHost = configuration.admin.probesHost {
            var probes = admin
            probes.probesOnly = true
            self.probesListener = HTTPServer(
                name: "probes", host: probesHost, port: configuration.admin.probesPort, group: group, logger: logger,
                fallbackToAnyPort: fallback, onBound: onBound, configurator: .http(responder: probes))
        } else {
            self.probesListener = nil
        }
    }

    /// The services to run, in start order (tunnel and admin before clients; stopped in reverse).
    public var services: [any Service] {
        var services: [any Service] = []
        if let client = self.core.httpClient {
            services += [HTTPClientService(client: client), self.core.central]
        }
        if let auditor = self.core.auditor { services.append(auditor) }
        // Always: a reload may name files the start did not (helper-81).
        services.append(CredentialFilesWatcher(reloader: self.reloader, eventLoop: self.signalLoop))
        services +=
            [ReloadOnSignal(reloader: self.reloader, eventLoop: self.signalLoop), self.adminListener]
            + (self.probesListener.map { [$0] } ?? []) + [self.tunnelListener]
            + (self.internalListener.map { [$0] } ?? []) + (self.clusterService.map { [$0] } ?? [])
            + [self.clientListener]
            + (self.tlsListener.map { [$0] } ?? [])
        return services + [
            LoadSheddingService(loads: self.loads),
            HeapTrimService(logger: self.logger),
            ShutdownNotifier(readiness: self.readiness, core: self.core),
        ]
    }

    /// Runs every listener and helper until graceful shutdown, then drains them in reverse order.
    public func run() async throws {
        let tokenFile = self.writeDashboardToken()
        defer { tokenFile?.remove() }
        let group = ServiceGroup(
            configuration: .init(services: self.services.map { .init(service: $0) }, logger: self.logger))
        try await group.run()
    }

    /// Without `admin.tokenFile`, leaves the generated dashboard token in a private file and logs
    /// where (never the token: log lines travel to shippers and stores an admin credential must not).
    private func writeDashboardToken() -> DashboardTokenFile? {
        guard self.dashboard.generated else { return nil }
        do {
            let file = try DashboardTokenFile(token: self.dashboard.token)
            self.logger.notice(
                "Dashboard: the login token is in \(file.path) (mode 0600, removed at exit): open /dashboard/login?token=<it> on the admin port, or set admin.tokenFile"
            )
            return file
        } catch {
            self.logger.warning("The dashboard needs admin.tokenFile: \(error)")
            return nil
        }
    }

    /// Runs the gateway as the whole program: SIGTERM and SIGINT drain it, SIGHUP reloads.
    /// - Throws: ``StoppedAtSecondSignal`` when a second SIGTERM or SIGINT cut the drain (`fleetgate serve`
    ///   exits with its ``StoppedAtSecondSignal/exitCode``, not 0).
    public func runService() async throws {
        // The first SIGTERM or SIGINT drains; a second one stops at once, cutting what is still in flight.
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: self)], gracefulShutdownSignals: [.sigterm, .sigint], logger: self.logger))
        if let cut = try await group.runStoppingAtSecondSignal() {
            self.logger.warning(
                "Stopped at a second signal: streams still in flight were cut",
                metadata: ["process.exit.code": "\(cut.exitCode)"])
            throw cut
        }
        self.logger.notice("Stopped")
    }

    /// The client TLS for `https://` central endpoints: the system's roots and `central.caFile`'s
    /// CAs, ALPN `http/1.1`; nil when no endpoint is https.
    static func centralTLSConfiguration(_ configuration: GatewayConfiguration) throws
        -> (configuration: TLSConfiguration, context: NIOSSLContext)?
    {
        guard configuration.central.endpoints.contains(where: { $0.baseURL.lowercased().hasPrefix("https://") }) else {
            return nil
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["http/1.1"]
        if let caFile = configuration.central.caFile {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw ConfigurationError(
                    .unreadableFile, key: "central.caFile", value: caFile, "cannot load PEM certificates: \(error)",
                    cause: error)
            }
        }
        return (tls, try NIOSSLContext(configuration: tls))
    }

    /// The client TLS listener's context from the configuration's files (nil: no TLS listener).
    static func clientContext(_ configuration: GatewayConfiguration) throws -> TLSContextBox.Served? {
        try configuration.listeners.tls.files.map {
            try TLSContextBox.makeContext($0, key: "listeners.tls", alpn: HTTPServerPipeline.alpnProtocols)
        }
    }

    /// The tunnel listener's TLS context: the server certificate, and with `tunnel.auth:
    /// certificate` the fleet CA that client certificates must chain to (issue #20).
    static func tunnelContext(_ configuration: GatewayConfiguration) throws -> TLSContextBox.Served? {
        try configuration.listeners.tunnel.files.map {
            try TLSContextBox.makeContext(
                $0, key: "listeners.tunnel", alpn: ["h2"],
                clientCA: configuration.tunnel.auth == .certificate ? configuration.tunnel.caFile : nil)
        }
    }

    static func isLoopback(_ ip: String) -> Bool { ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.") }
}

/// Reloads on SIGHUP.
struct ReloadOnSignal: Service {
    let reloader: GatewayReloader
    let eventLoop: any EventLoop
    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            // Coalesced with the admin API's reloads; a failure is logged by the reloader.
            _ = try? await self.reloader.reload(on: self.eventLoop).get()
            _ = try? await self.reloader.reloadKeys(on: self.eventLoop).get()  // edge (#18): the application key file
        }
    }
}

/// Measures every event loop's lag while the gateway runs (``EventLoopLoad``).
struct LoadSheddingService: Service {
    let loads: EventLoopLoads
    func run() async throws {
        self.loads.start()
        try? await gracefulShutdown()
        self.loads.stop()
    }
}

/// Owns the HTTP client's lifetime: shuts it down after every listener has stopped.
struct HTTPClientService: Service {
    let client: HTTPClient
    func run() async throws {
        try? await gracefulShutdown()
        try? await self.client.shutdown()
    }
}

/// As soon as shutdown begins: flips readiness to false, so load balancers stop sending traffic,
/// and tells every car to `reconnect` (control channel) — its streams finish here, new work goes
/// to another gateway — before the listeners stop in reverse order.
struct ShutdownNotifier: Service {
    let readiness: Readiness
    let core: GatewayCore
    func run() async throws {
        try? await gracefulShutdown()
        // helper-70: a drain said nothing, and an operator could not tell it from a hang. helper-73: a
        // listener that failed to bind also ends the group, and "Draining" then hid the real cause: a
        // gateway that never came up says it stops because start-up failed.
        if self.readiness.isReady {
            self.core.logger.notice(
                "Draining: /readyz answers 503 and connections get GOAWAY; streams in flight may finish (a second SIGTERM or SIGINT stops at once)",
                metadata: [
                    "fleet.drain.seconds":
                        "\(self.core.configuration.limits.clientHTTP2.gracefulShutdownTimeout.nanoseconds / 1_000_000_000)",
                    "fleet.requests.in_flight": "\(self.core.requestsInFlight)",
                ])
        } else {
            self.core.logger.notice("Stopping before every listener was bound (see the error above)")
        }
        self.readiness.stopping()
        // Before the walk: a car registering meanwhile is in the table the walk reads or sees the
        // flag (both sequentially consistent), so none is missed — one may hear it twice.
        self.core.beginDraining()
        for tunnel in self.core.tunnels.all {
            tunnel.execute { handler in
                guard let session = handler.delegate as? CarSession else { return }
                session.send(session.reconnectMessage())  // with the other replicas' addresses (#21)
            }
        }
    }
}
