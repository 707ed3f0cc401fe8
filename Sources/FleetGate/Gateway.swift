import AsyncHTTPClient
import CoreMetrics
public import FleetHTTP2
import FleetProtocol
import FleetScheduler
public import Logging
public import NIOCore
import NIOSSL
public import Prometheus
public import ServiceLifecycle
import UnixSignals

/// The gateway: client, tunnel and admin listeners over one fleet registry.
///
/// ```swift
/// let gateway = try Gateway(configuration: config, group: group, logger: logger)
/// let services = ServiceGroup(services: gateway.services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// try await services.run()
/// ```
public final class Gateway: Sendable {
    /// Shared state of every handler.
    public let core: GatewayCore
    /// The Prometheus registry behind `/metrics`.
    public let prometheus: PrometheusCollectorRegistry
    public let clientListener: Listener
    public let tunnelListener: Listener
    public let adminListener: Listener
    /// The TLS client listener, when TLS is configured.
    public let tlsListener: Listener?
    /// The read-only probes listener, when ``GatewayConfiguration/probesHost`` is set.
    public let probesListener: Listener?
    public let readiness: Readiness

    /// Builds the gateway; nothing binds until its services run.
    /// - Throws: ``GatewayError`` or ``CredentialError`` for invalid configuration, naming the key and value.
    public init(configuration: GatewayConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        let prometheus = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(
            factory: PrometheusMetricsFactory(registry: prometheus), policy: configuration.schedulingPolicy)
        let credentials: FleetCredentials
        do { credentials = try FleetCredentials(secret: configuration.fleetSecret) } catch {
            throw GatewayError(code: .invalidConfiguration, message: "key 'fleetSecret': \(error.reason)")
        }
        for (key, port) in [
            ("clientPort", configuration.clientPort), ("tunnelPort", configuration.tunnelPort),
            ("adminPort", configuration.adminPort),
        ] where !(0...65535).contains(port) {
            throw GatewayError(code: .invalidConfiguration, message: "key '\(key)': \(port) is not a port (0–65535)")
        }
        let sslContext = try configuration.tls.map {
            try Self.makeSSLContext($0, key: "tls", alpn: HTTPServerPipeline.alpnProtocols)
        }
        let tunnelSSL = try configuration.tunnelTLS.map { try Self.makeSSLContext($0, key: "tunnelTLS", alpn: ["h2"]) }
        try CentralDirectory.validate(configuration)
        // Created last, after every check that can throw: an HTTPClient must be shut down before it is released.
        let httpClient =
            configuration.central.isEmpty
            ? nil : HTTPClient(eventLoopGroup: group, configuration: .init(timeout: .init(connect: .seconds(5))))
        let core = try GatewayCore(
            configuration: configuration, credentials: credentials, metrics: metrics, httpClient: httpClient,
            logger: logger)
        let readiness = Readiness(
            expected: 3 + (sslContext == nil ? 0 : 1) + (configuration.probesHost == nil ? 0 : 1))
        self.core = core
        self.prometheus = prometheus
        self.readiness = readiness

        let api = APIResponder(core: core)
        let clientHTTP2 = configuration.clientHTTP2
        let proxyProtocolFrom = core.proxyProtocolFrom
        let tlsProxyProtocolFrom = core.tlsProxyProtocolFrom
        self.clientListener = Listener(
            name: "client", host: configuration.host, port: configuration.clientPort, group: group, logger: logger,
            fallbackToAnyPort: configuration.fallbackToFreePorts, onBound: { _ in readiness.listenerBound() }
        ) { channel in
            try HTTPServerPipeline.configureCleartext(
                channel, responder: api, configuration: clientHTTP2,
                proxyProtocol: GatewayCore.expectsProxyProtocol(from: channel.remoteAddress, ranges: proxyProtocolFrom))
        }

        let tunnelHTTP2 = configuration.tunnelHTTP2
        let allowCleartext = configuration.allowCleartextTunnels
        self.tunnelListener = Listener(
            name: "tunnel", host: configuration.host, port: configuration.tunnelPort, group: group, logger: logger,
            fallbackToAnyPort: configuration.fallbackToFreePorts, onBound: { _ in readiness.listenerBound() }
        ) { channel in
            if let tunnelSSL {
                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tunnelSSL))
            } else if !allowCleartext, let ip = channel.remoteAddress?.ipAddress, !Self.isLoopback(ip) {
                // Cleartext tunnels only on loopback (development); production tunnels arrive over TLS.
                channel.close(promise: nil)
                return
            }
            let handler = try HTTPServerPipeline.addHTTP2(
                channel, role: .client, configuration: tunnelHTTP2, httpProtocol: tunnelSSL == nil ? "h2c" : "h2",
                isTLS: tunnelSSL != nil)
            CarSession(core: core, handle: HTTP2ConnectionHandle(handler, channel: channel)).start()
        }

        if let sslContext {
            self.tlsListener = Listener(
                name: "client-tls", host: configuration.host, port: configuration.tlsPort, group: group, logger: logger,
                fallbackToAnyPort: configuration.fallbackToFreePorts,
                onBound: { _ in readiness.listenerBound() }
            ) { channel in
                try HTTPServerPipeline.configureTLS(
                    channel, sslContext: sslContext, responder: api, configuration: clientHTTP2,
                    proxyProtocol: GatewayCore.expectsProxyProtocol(
                        from: channel.remoteAddress, ranges: tlsProxyProtocolFrom))
            }
        } else {
            self.tlsListener = nil
        }

        let guardrail = try AdminGuard(
            tokenFile: configuration.adminTokenFile, bindHost: configuration.adminHost,
            allowedHosts: configuration.adminAllowedHosts)
        if guardrail.token == nil {
            logger.warning("No admin token file: the admin API is open to anyone who can reach its port")
        }
        let admin = AdminResponder(core: core, prometheus: prometheus, readiness: readiness, guardrail: guardrail)
        self.adminListener = Listener(
            name: "admin", host: configuration.adminHost, port: configuration.adminPort, group: group, logger: logger,
            fallbackToAnyPort: configuration.fallbackToFreePorts, onBound: { _ in readiness.listenerBound() }
        ) { channel in
            try HTTPServerPipeline.configureCleartext(channel, responder: admin, configuration: .defaults)
        }
        if let probesHost = configuration.probesHost {
            var probesOnly = admin
            probesOnly.probesOnly = true
            let probes = probesOnly
            self.probesListener = Listener(
                name: "probes", host: probesHost, port: configuration.probesPort, group: group, logger: logger,
                fallbackToAnyPort: configuration.fallbackToFreePorts, onBound: { _ in readiness.listenerBound() }
            ) { channel in
                try HTTPServerPipeline.configureCleartext(channel, responder: probes, configuration: .defaults)
            }
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
        services +=
            [ReloadOnSignal(core: self.core), self.adminListener]
            + (self.probesListener.map { [$0] } ?? []) + [self.tunnelListener, self.clientListener]
            + (self.tlsListener.map { [$0] } ?? [])
        return services + [ShutdownNotifier(readiness: self.readiness, tunnels: self.core.tunnels)]
    }

    /// Loads PEM files into a server TLS context offering `alpn`; errors name the configuration key and file.
    static func makeSSLContext(_ files: GatewayConfiguration.TLSFiles, key name: String, alpn: [String]) throws
        -> NIOSSLContext
    {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain) } catch {
            throw GatewayError(
                code: .invalidConfiguration,
                message:
                    "key '\(name).certificateChain': cannot load PEM certificates from '\(files.certificateChain)': \(error)"
            )
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem) } catch {
            throw GatewayError(
                code: .invalidConfiguration,
                message: "key '\(name).privateKey': cannot load a PEM private key from '\(files.privateKey)': \(error)")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.applicationProtocols = alpn
        do { return try NIOSSLContext(configuration: tls) } catch {
            throw GatewayError(
                code: .invalidConfiguration,
                message: "key '\(name)': the certificate and key do not form a TLS context: \(error)")
        }
    }

    static func isLoopback(_ ip: String) -> Bool { ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.") }
}

/// Reloads the region map and database on SIGHUP.
struct ReloadOnSignal: Service {
    let core: GatewayCore
    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            _ = try? self.core.reloadGeo()
            _ = try? self.core.reloadKeys()
        }
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
    let tunnels: TunnelTable
    func run() async throws {
        try? await gracefulShutdown()
        self.readiness.stopping()
        for tunnel in self.tunnels.all {
            tunnel.execute { handler in
                (handler.delegate as? CarSession)?.send(ControlMessage(type: .reconnect, reason: "gateway draining"))
            }
        }
    }
}
