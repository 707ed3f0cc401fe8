public import FleetGeo
public import FleetHTTP2
public import FleetScheduler
public import NIOCore

/// The flat names the request path, the handlers and the tests read (`core.configuration.maxBodyBytes`),
/// forwarded to the nested types so code written against them keeps working unchanged.
extension GatewayConfiguration {
    /// Forwards to ``listeners``: `listeners.host`.
    public var host: String {
        get { self.listeners.host }
        set { self.listeners.host = newValue }
    }
    /// Forwards to ``listeners``: `listeners.client.port`.
    public var clientPort: Int {
        get { self.listeners.client.port }
        set { self.listeners.client.port = newValue }
    }
    /// Forwards to ``listeners``: `listeners.client.proxyProtocolFrom`.
    public var proxyProtocolFrom: [String] {
        get { self.listeners.client.proxyProtocolFrom }
        set { self.listeners.client.proxyProtocolFrom = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tls.proxyProtocolFrom`.
    public var tlsProxyProtocolFrom: [String] {
        get { self.listeners.tls.proxyProtocolFrom }
        set { self.listeners.tls.proxyProtocolFrom = newValue }
    }
    /// Forwards to ``admin``: `admin.tokenFile`.
    public var adminTokenFile: String? {
        get { self.admin.tokenFile }
        set { self.admin.tokenFile = newValue }
    }
    /// Forwards to ``admin``: `admin.allowedHosts`.
    public var adminAllowedHosts: [String] {
        get { self.admin.allowedHosts }
        set { self.admin.allowedHosts = newValue }
    }
    /// Forwards to ``admin``: `admin.probesHost`.
    public var probesHost: String? {
        get { self.admin.probesHost }
        set { self.admin.probesHost = newValue }
    }
    /// Forwards to ``admin``: `admin.probesPort`.
    public var probesPort: Int {
        get { self.admin.probesPort }
        set { self.admin.probesPort = newValue }
    }
    /// Forwards to ``auth``: `auth.appKeysFile`.
    public var appKeysFile: String? {
        get { self.auth.appKeysFile }
        set { self.auth.appKeysFile = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tls.port`.
    public var tlsPort: Int {
        get { self.listeners.tls.port }
        set { self.listeners.tls.port = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tls.files`.
    public var tls: TLSFiles? {
        get { self.listeners.tls.files }
        set { self.listeners.tls.files = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tunnel.port`.
    public var tunnelPort: Int {
        get { self.listeners.tunnel.port }
        set { self.listeners.tunnel.port = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tunnel.files`.
    public var tunnelTLS: TLSFiles? {
        get { self.listeners.tunnel.files }
        set { self.listeners.tunnel.files = newValue }
    }
    /// Forwards to ``listeners``: `listeners.tunnel.allowCleartext`.
    public var allowCleartextTunnels: Bool {
        get { self.listeners.tunnel.allowCleartext }
        set { self.listeners.tunnel.allowCleartext = newValue }
    }
    /// Forwards to ``admin``: `admin.host`.
    public var adminHost: String {
        get { self.admin.host }
        set { self.admin.host = newValue }
    }
    /// Forwards to ``admin``: `admin.port`.
    public var adminPort: Int {
        get { self.admin.port }
        set { self.admin.port = newValue }
    }
    /// Forwards to ``limits``: `limits.maxBodyBytes`.
    public var maxBodyBytes: Int {
        get { self.limits.maxBodyBytes }
        set { self.limits.maxBodyBytes = newValue }
    }
    /// Forwards to ``limits``: `limits.bodyTimeout`.
    public var bodyTimeout: TimeAmount {
        get { self.limits.bodyTimeout }
        set { self.limits.bodyTimeout = newValue }
    }
    /// Forwards to ``limits``: `limits.maxInFlightRequests`.
    public var maxInFlightRequests: Int {
        get { self.limits.maxInFlightRequests }
        set { self.limits.maxInFlightRequests = newValue }
    }
    /// Forwards to ``limits``: `limits.clientHTTP2`.
    public var clientHTTP2: HTTP2Configuration {
        get { self.limits.clientHTTP2 }
        set { self.limits.clientHTTP2 = newValue }
    }
    /// Forwards to ``limits``: `limits.tunnelHTTP2`.
    public var tunnelHTTP2: HTTP2Configuration {
        get { self.limits.tunnelHTTP2 }
        set { self.limits.tunnelHTTP2 = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.firstTokenTimeout`.
    public var firstTokenTimeout: TimeAmount {
        get { self.dispatch.firstTokenTimeout }
        set { self.dispatch.firstTokenTimeout = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.maxAttempts`.
    public var maxAttempts: Int {
        get { self.dispatch.maxAttempts }
        set { self.dispatch.maxAttempts = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.policy`.
    public var schedulingPolicy: SchedulingPolicy {
        get { self.dispatch.policy }
        set { self.dispatch.policy = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.defaultTTFTObjectiveMilliseconds`.
    public var defaultTTFTObjectiveMilliseconds: Double {
        get { self.dispatch.defaultTTFTObjectiveMilliseconds }
        set { self.dispatch.defaultTTFTObjectiveMilliseconds = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.tpotObjectiveMilliseconds`.
    public var tpotObjectiveMilliseconds: Double {
        get { self.dispatch.tpotObjectiveMilliseconds }
        set { self.dispatch.tpotObjectiveMilliseconds = newValue }
    }
    /// Forwards to ``geo``: `geo.regionMap`.
    public var regionMap: RegionMap {
        get { self.geo.regionMap }
        set { self.geo.regionMap = newValue }
    }
    /// Forwards to ``geo``: `geo.regionsFile`.
    public var regionsFile: String? {
        get { self.geo.regionsFile }
        set { self.geo.regionsFile = newValue }
    }
    /// Forwards to ``geo``: `geo.databaseFile`.
    public var geoipDatabase: String? {
        get { self.geo.databaseFile }
        set { self.geo.databaseFile = newValue }
    }
    /// Forwards to ``geo``: `geo.trustedProxies`.
    public var trustedProxies: [String] {
        get { self.geo.trustedProxies }
        set { self.geo.trustedProxies = newValue }
    }
    /// Forwards to ``tunnel``: `tunnel.helloTimeout`.
    public var helloTimeout: TimeAmount {
        get { self.tunnel.helloTimeout }
        set { self.tunnel.helloTimeout = newValue }
    }
    /// Forwards to ``tunnel``: `tunnel.pingInterval`.
    public var carPingInterval: TimeAmount {
        get { self.tunnel.pingInterval }
        set { self.tunnel.pingInterval = newValue }
    }
    /// Forwards to ``auth``: `auth.apiKeys`.
    public var apiKeys: Set<String> {
        get { self.auth.apiKeys }
        set { self.auth.apiKeys = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.maxMigrations`.
    public var maxMigrations: Int {
        get { self.dispatch.maxMigrations }
        set { self.dispatch.maxMigrations = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.hedging`.
    public var hedging: Bool {
        get { self.dispatch.hedging }
        set { self.dispatch.hedging = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.hedgeFactor`.
    public var hedgeFactor: Double {
        get { self.dispatch.hedgeFactor }
        set { self.dispatch.hedgeFactor = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.minimumHedgeDelay`.
    public var minimumHedgeDelay: TimeAmount {
        get { self.dispatch.minimumHedgeDelay }
        set { self.dispatch.minimumHedgeDelay = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.hedgeBudget`.
    public var hedgeBudget: Double {
        get { self.dispatch.hedgeBudget }
        set { self.dispatch.hedgeBudget = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.interTokenTimeout`.
    public var interTokenTimeout: TimeAmount {
        get { self.dispatch.interTokenTimeout }
        set { self.dispatch.interTokenTimeout = newValue }
    }
    /// Forwards to ``dispatch``: `dispatch.attemptTimeout`.
    public var attemptTimeout: TimeAmount {
        get { self.dispatch.attemptTimeout }
        set { self.dispatch.attemptTimeout = newValue }
    }
    /// Forwards to ``tunnel``: `tunnel.busyPingInterval`.
    public var busyPingInterval: TimeAmount {
        get { self.tunnel.busyPingInterval }
        set { self.tunnel.busyPingInterval = newValue }
    }
}
