import FleetHTTP2
import FleetScheduler
import NIOCore

/// `GET /admin/config`: the running configuration, after reloads, with every secret withheld.
///
/// Secrets appear only as whether and how many are set (`fleetSecret: "set"`, `apiKeys: 2`); files
/// are shown by path. The keys follow `docs/configuration.md`.
struct ConfigView: Encodable {
    struct Listeners: Encodable {
        var host: String
        var clientPort: Int
        var proxyProtocolFrom: [String]
        var tlsPort: Int?
        var tlsCertificateChainFile: String?
        var tunnelPort: Int
        var tunnelCertificateChainFile: String?
        var allowCleartextTunnels: Bool
    }
    struct Limits: Encodable {
        var maxBodyBytes: Int
        var bodyTimeoutSeconds: Double
        var maxInFlightRequests: Int
        var clientHTTP2: [String: Double]
        var tunnelHTTP2: [String: Double]
    }
    struct Dispatch: Encodable {
        var firstTokenTimeoutSeconds: Double
        var maxAttempts: Int
        var policy: String
        var ttftObjectiveMilliseconds: Double
        var tpotObjectiveMilliseconds: Double
        var maxMigrations: Int
        var hedging: Bool
        var hedgeFactor: Double
        var minimumHedgeDelaySeconds: Double
        var hedgeBudget: Double
        var interTokenTimeoutSeconds: Double
        var attemptTimeoutSeconds: Double
        var capacityWaitSeconds: Double
    }
    struct Geo: Encodable {
        var regionsFile: String?
        var regionsVersion: String
        var databaseFile: String?
        var trustedProxies: [String]
    }
    var listeners: Listeners
    var admin: String
    var limits: Limits
    var dispatch: Dispatch
    var geo: Geo
    var tunnel: [String: Double]
    var central: [String]
    var apiKeys: Int
    var corsOrigins: [String]
    var fleetSecret: String
    var logLevel: String

    init(_ c: GatewayConfiguration, regionsVersion: String) {
        func seconds(_ t: TimeAmount?) -> Double { Double(t?.nanoseconds ?? 0) / 1e9 }
        func http2(_ h: HTTP2Configuration) -> [String: Double] {
            [
                "maxConcurrentStreams": Double(h.maxConcurrentStreams),
                "initialStreamWindowSize": Double(h.initialStreamWindowSize),
                "connectionWindowSize": Double(h.connectionWindowSize), "maxFrameSize": Double(h.maxFrameSize),
                "maxHeaderListSize": Double(h.maxHeaderListSize),
                "outboundHighWatermark": Double(h.outboundHighWatermark),
                "outboundLowWatermark": Double(h.outboundLowWatermark),
                "idleTimeoutSeconds": seconds(h.idleTimeout), "handshakeTimeoutSeconds": seconds(h.handshakeTimeout),
                "stallTimeoutSeconds": seconds(h.stallTimeout),
                "gracefulShutdownTimeoutSeconds": seconds(h.gracefulShutdownTimeout),
                "keepaliveIntervalSeconds": seconds(h.keepaliveInterval),
                "keepaliveTimeoutSeconds": seconds(h.keepaliveTimeout),
                "maxResetsPerSecond": Double(h.maxResetsPerSecond),
                "maxContinuationFrames": Double(h.maxContinuationFrames),
                "maxPingsPerSecond": Double(h.maxPingsPerSecond),
                "maxSettingsPerSecond": Double(h.maxSettingsPerSecond),
                "maxEmptyDataFramesPerSecond": Double(h.maxEmptyDataFramesPerSecond),
                "maxWindowUpdatesPerSecond": Double(h.maxWindowUpdatesPerSecond),
                "maxPrioritiesPerSecond": Double(h.maxPrioritiesPerSecond),
            ]
        }
        let l = c.listeners
        self.listeners = Listeners(
            host: l.host, clientPort: l.client.port, proxyProtocolFrom: l.client.proxyProtocolFrom,
            tlsPort: l.tls.files == nil ? nil : l.tls.port, tlsCertificateChainFile: l.tls.files?.certificateChain,
            tunnelPort: l.tunnel.port, tunnelCertificateChainFile: l.tunnel.files?.certificateChain,
            allowCleartextTunnels: l.tunnel.allowCleartext)
        self.admin = "\(c.admin.host):\(c.admin.port)"
        self.limits = Limits(
            maxBodyBytes: c.limits.maxBodyBytes, bodyTimeoutSeconds: seconds(c.limits.bodyTimeout),
            maxInFlightRequests: c.limits.maxInFlightRequests, clientHTTP2: http2(c.limits.clientHTTP2),
            tunnelHTTP2: http2(c.limits.tunnelHTTP2))
        self.dispatch = Dispatch(
            firstTokenTimeoutSeconds: seconds(c.dispatch.firstTokenTimeout), maxAttempts: c.dispatch.maxAttempts,
            policy: c.dispatch.policy.rawValue, ttftObjectiveMilliseconds: c.dispatch.defaultTTFTObjectiveMilliseconds,
            tpotObjectiveMilliseconds: c.dispatch.tpotObjectiveMilliseconds, maxMigrations: c.dispatch.maxMigrations,
            hedging: c.dispatch.hedging, hedgeFactor: c.dispatch.hedgeFactor,
            minimumHedgeDelaySeconds: seconds(c.dispatch.minimumHedgeDelay), hedgeBudget: c.dispatch.hedgeBudget,
            interTokenTimeoutSeconds: seconds(c.dispatch.interTokenTimeout),
            attemptTimeoutSeconds: seconds(c.dispatch.attemptTimeout),
            capacityWaitSeconds: seconds(c.dispatch.capacityWait))
        self.geo = Geo(
            regionsFile: c.geo.regionsFile, regionsVersion: regionsVersion, databaseFile: c.geo.databaseFile,
            trustedProxies: c.geo.trustedProxies)
        self.tunnel = [
            "helloTimeoutSeconds": seconds(c.tunnel.helloTimeout),
            "pingIntervalSeconds": seconds(c.tunnel.pingInterval),
            "busyPingIntervalSeconds": seconds(c.tunnel.busyPingInterval),
        ]
        self.central = c.central.endpoints.map { "\($0.region)=\(CentralDirectory.redacted($0.baseURL))" }
        self.apiKeys = c.auth.apiKeys.count
        self.corsOrigins = c.auth.corsOrigins
        self.fleetSecret = c.fleetSecret.isEmpty ? "unset" : "set"
        self.logLevel = c.logging.level
    }
}
