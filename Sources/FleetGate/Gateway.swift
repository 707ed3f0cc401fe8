public import FleetHTTP2
import FleetScheduler
public import Logging
public import NIOCore
public import Prometheus
public import ServiceLifecycle
import CoreMetrics

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
    public let readiness: Readiness

    /// Builds the gateway; nothing binds until its services run.
    /// - Throws: ``GatewayError`` or ``CredentialError`` for invalid configuration, naming the key and value.
    public init(configuration: GatewayConfiguration, group: any EventLoopGroup, logger: Logger) throws {
        let prometheus = PrometheusCollectorRegistry()
        let metrics = GatewayMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
        let credentials: FleetCredentials
        do { credentials = try FleetCredentials(secret: configuration.fleetSecret) } catch {
            throw GatewayError(code: .invalidConfiguration, message: "key 'fleetSecret': \(error.reason)")
        }
        for (key, port) in [("clientPort", configuration.clientPort), ("tunnelPort", configuration.tunnelPort),
                            ("adminPort", configuration.adminPort)] where !(0...65535).contains(port) {
            throw GatewayError(code: .invalidConfiguration, message: "key '\(key)': \(port) is not a port (0–65535)")
        }
        let core = try GatewayCore(configuration: configuration, credentials: credentials, metrics: metrics, logger: logger)
        let readiness = Readiness(expected: 3)
        self.core = core
        self.prometheus = prometheus
        self.readiness = readiness

        let api = APIResponder(core: core)
        let clientHTTP2 = configuration.clientHTTP2
        self.clientListener = Listener(
            name: "client", host: configuration.host, port: configuration.clientPort, group: group, logger: logger,
            onBound: { _ in readiness.listenerBound() }
        ) { channel in
            try HTTPServerPipeline.configureCleartext(channel, responder: api, configuration: clientHTTP2)
        }

        let tunnelHTTP2 = configuration.tunnelHTTP2
        let allowCleartext = configuration.allowCleartextTunnels
        self.tunnelListener = Listener(
            name: "tunnel", host: configuration.host, port: configuration.tunnelPort, group: group, logger: logger,
            onBound: { _ in readiness.listenerBound() }
        ) { channel in
            if !allowCleartext, let ip = channel.remoteAddress?.ipAddress, !Self.isLoopback(ip) {
                // Cleartext tunnels only on loopback (development); production tunnels arrive over TLS.
                channel.close(promise: nil)
                return
            }
            let handler = try HTTPServerPipeline.addHTTP2(channel, role: .client, configuration: tunnelHTTP2)
            CarSession(core: core, handle: HTTP2ConnectionHandle(handler, channel: channel)).start()
        }

        let admin = AdminResponder(core: core, prometheus: prometheus, readiness: readiness)
        self.adminListener = Listener(
            name: "admin", host: configuration.adminHost, port: configuration.adminPort, group: group, logger: logger,
            onBound: { _ in readiness.listenerBound() }
        ) { channel in
            try HTTPServerPipeline.configureCleartext(channel, responder: admin, configuration: .defaults)
        }
    }

    /// The services to run, in start order (tunnel and admin before clients; stopped in reverse).
    public var services: [any Service] { [self.adminListener, self.tunnelListener, self.clientListener, ShutdownNotifier(readiness: self.readiness)] }

    static func isLoopback(_ ip: String) -> Bool { ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.") }
}

/// Flips readiness to false as soon as shutdown begins, so load balancers stop sending traffic.
struct ShutdownNotifier: Service {
    let readiness: Readiness
    func run() async throws {
        try? await gracefulShutdown()
        self.readiness.stopping()
    }
}
