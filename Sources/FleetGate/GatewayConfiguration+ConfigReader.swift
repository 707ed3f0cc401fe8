public import Configuration
public import FleetConfiguration
import FleetGeo
public import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import Logging
import NIOCore

extension GatewayConfiguration {
    /// Reads the whole gateway configuration.
    ///
    /// ## Configuration keys:
    /// - `listeners` (scoped): ``Listeners/init(config:)``.
    /// - `admin` (scoped): ``Admin/init(config:)``.
    /// - `limits` (scoped): ``Limits/init(config:)``, with `limits.clientHTTP2` and `limits.tunnelHTTP2`.
    /// - `dispatch` (scoped): ``Dispatch/init(config:)``.
    /// - `geo` (scoped): ``Geo/init(config:)``.
    /// - `tunnel` (scoped): ``Tunnel/init(config:)``.
    /// - `central` (scoped): ``Central/init(config:)``.
    /// - `audit` (scoped): ``Audit/init(config:)``.
    /// - `auth` (scoped): ``Auth/init(config:)``.
    /// - `logging` (scoped): ``Logging/init(config:)``.
    /// - `cluster` (scoped): ``Cluster/init(config:)``.
    /// - `eventLoopThreads` (int, default 0 = one per core, 0…1024).
    /// - `fleetSecret` (string, secret, environment `FLEETGATE_FLEET_SECRET` only) or
    ///   `fleetSecretFile` (string, path): the fleet secret, at least 16 bytes; required.
    ///
    /// - Throws: ``ConfigurationError`` naming the key and value.
    public init(config: ConfigReader) throws {
        guard let secret = try config.secret("fleetSecret", orFile: "fleetSecretFile") else {
            throw ConfigurationError(
                .missingValue, key: "fleetSecret",
                "is required: set FLEETGATE_FLEET_SECRET or fleetSecretFile (at least 16 bytes)")
        }
        self.init(
            fleetSecret: secret,
            listeners: try config.scoped("listeners") { try Listeners(config: $0) },
            admin: try config.scoped("admin") { try Admin(config: $0) },
            limits: try config.scoped("limits") { try Limits(config: $0) },
            dispatch: try config.scoped("dispatch") { try Dispatch(config: $0) },
            geo: try config.scoped("geo") { try Geo(config: $0) },
            tunnel: try config.scoped("tunnel") { try Tunnel(config: $0) },
            central: try config.scoped("central") { try Central(config: $0) },
            auth: try config.scoped("auth") { try Auth(config: $0) },
            logging: try config.scoped("logging") { try Logging(config: $0) },
            eventLoopThreads: try config.int("eventLoopThreads", in: 0...1024))
        self.cluster = try config.scoped("cluster") { try Cluster(config: $0) }
        self.audit = try config.scoped("audit") { try Audit(config: $0) }
        try self.validate()
    }

    /// Reads the configuration from `stack`, every error of its file at once, with each key's value kept in
    /// ``readValues``.
    /// - Parameter again: read the file again first (a reload).
    /// - Throws: ``ConfigurationErrors`` or ``ConfigurationError``.
    public static func read(from stack: ConfigStack, again: Bool = false) throws -> GatewayConfiguration {
        let recorder = ConfigValueRecorder()
        let body = { (config: ConfigReader) in try GatewayConfiguration(config: config) }
        var configuration =
            try again
            ? stack.rereadReportingAll(recorder: recorder, body) : stack.readReportingAll(recorder: recorder, body)
        configuration.readValues = recorder.recorded
        return configuration
    }

    /// Checks the rules across keys (also for configurations built in code, by ``Gateway/init(configuration:group:logger:)``).
    /// - Throws: ``ConfigurationError`` naming the key and value.
    public func validate() throws {
        do { _ = try FleetCredentials(secret: self.fleetSecret) } catch {
            throw ConfigurationError(.invalidValue, key: "fleetSecret", error.reason)
        }
        for (key, port) in [
            ("listeners.client.port", self.listeners.client.port),
            ("listeners.tunnel.port", self.listeners.tunnel.port),
            ("listeners.tls.port", self.listeners.tls.port), ("admin.port", self.admin.port),
        ] where !(0...65535).contains(port) {
            throw ConfigurationError(.invalidValue, key: key, value: "\(port)", "is not a port (0–65535)")
        }
        try self.checkPortsDistinct()
        // Files are parsed when the gateway is built; here they must at least be there, so that
        // `config check` catches a wrong path.
        var files: [(String, String?)] = [
            ("listeners.tls.certificateChainFile", self.listeners.tls.files?.certificateChain),
            ("listeners.tls.privateKeyFile", self.listeners.tls.files?.privateKey),
            ("listeners.tunnel.certificateChainFile", self.listeners.tunnel.files?.certificateChain),
            ("listeners.tunnel.privateKeyFile", self.listeners.tunnel.files?.privateKey),
            ("tunnel.caFile", self.tunnel.caFile),
        ]
        if self.geo.databaseFile != Geo.setupDatabase { files.append(("geo.databaseFile", self.geo.databaseFile)) }
        for case (let key, let path?) in files where !FileManager.default.isReadableFile(atPath: path) {
            throw ConfigurationError(.unreadableFile, key: key, value: path, "cannot read the file")
        }
        for origin in self.auth.corsOrigins where !CORSPolicy.isValidOrigin(origin) {
            throw ConfigurationError(
                .invalidValue, key: "auth.corsOrigins", value: origin,
                "is not a web origin: scheme://host[:port] without a path (https://app.example.com), or *")
        }
        for text in self.geo.trustedProxies where CIDR(text) == nil {
            throw ConfigurationError(
                .invalidValue, key: "geo.trustedProxies", value: text, "is not an address or CIDR block")
        }
        try self.checkEndpointRegions()
        for endpoint in self.central.endpoints {
            try Self.checkHTTPURL(endpoint.baseURL, key: "central.endpoints")
            guard endpoint.maxConcurrent > 0 else {
                throw ConfigurationError(
                    .invalidValue, key: "central.maxConcurrent", value: "\(endpoint.maxConcurrent)", "must be > 0")
            }
        }
    }

    /// Every key the gateway reads, in the order `docs/configuration.md` lists them.
    public static var schema: ConfigSchema {
        ConfigSchema([
            ConfigSchema([
                .secret(
                    "fleetSecret", "The fleet secret (≥ 16 bytes) that signs vehicle tokens. Environment only.",
                    aliases: ["--fleet-secret"]),
                .string("fleetSecretFile", "", "File holding the fleet secret (instead of FLEETGATE_FLEET_SECRET)."),
                .int("eventLoopThreads", 0, "Event loop threads (0: one per core).", aliases: ["--threads"]),
            ]),
            ConfigSchema(scope: "listeners", Listeners.configKeys),
            ConfigSchema(scope: "admin", Admin.configKeys),
            ConfigSchema(scope: "limits", Limits.configKeys),
            ConfigSchema(scope: "dispatch", Dispatch.configKeys),
            ConfigSchema(scope: "geo", Geo.configKeys),
            ConfigSchema(scope: "tunnel", Tunnel.configKeys),
            ConfigSchema(scope: "central", Central.configKeys),
            ConfigSchema(scope: "audit", Audit.configKeys),
            ConfigSchema(scope: "auth", Auth.configKeys),
            ConfigSchema(scope: "logging", Logging.configKeys),
            ConfigSchema(scope: "cluster", Cluster.configKeys),
        ])
    }

    /// Refuses a base URL that is not http(s) with a host and a port in 1–65535, showing it without its
    /// user or password. A port past 65535 parsed, and the first connection trapped the process
    /// (SocketAddress's port).
    static func checkHTTPURL(_ baseURL: String, key: String) throws {
        guard let url = URL(string: baseURL), url.scheme == "http" || url.scheme == "https",
            let host = url.host, !host.isEmpty, url.port.map({ (1...65_535).contains($0) }) ?? true
        else {
            throw ConfigurationError(
                .invalidValue, key: key, value: CentralDirectory.redacted(baseURL),
                "is not an http(s) URL with a host and a port in 1–65535")
        }
    }

    /// Reads a PEM pair from `certificateChainFile` / `privateKeyFile`; both or neither.
    static func tlsFiles(_ config: ConfigReader) throws -> TLSFiles? {
        let cert = try config.nonEmptyString("certificateChainFile")
        let key = try config.nonEmptyString("privateKeyFile")
        switch (cert, key) {
        case (nil, nil): return nil
        case (let cert?, let key?): return TLSFiles(certificateChain: cert, privateKey: key)
        case (nil, .some):
            var error = ConfigurationError(
                .missingValue, key: "certificateChainFile", "is required with privateKeyFile")
            error.relatedKeys = ["privateKeyFile"]
            throw error
        case (.some, nil):
            var error = ConfigurationError(
                .missingValue, key: "privateKeyFile", "is required with certificateChainFile")
            error.relatedKeys = ["certificateChainFile"]
            throw error
        }
    }
}

extension GatewayConfiguration.Listeners {
    /// ## Configuration keys:
    /// - `host` (string, default 127.0.0.1): address of the client, TLS and tunnel listeners.
    /// - `client.port` (int, default 8080, 0 = any free), `client.proxyProtocolFrom` (string list, default
    ///   empty = off): load balancers (CIDR) whose connections start with a PROXY protocol v2 header.
    /// - `tls.port` (int, default 8443), `tls.certificateChainFile`, `tls.privateKeyFile` (string, default empty = no TLS listener),
    ///   `tls.proxyProtocolFrom` (string list, default empty = off).
    /// - `tunnel.port` (int, default 7443), `tunnel.certificateChainFile`, `tunnel.privateKeyFile` (string, default empty = cleartext),
    ///   `tunnel.allowCleartext` (bool, default false).
    public init(config: ConfigReader) throws {
        self.init()
        self.host = try config.string("host")
        self.client.port = try config.int("client.port", in: 0...65535)
        self.client.proxyProtocolFrom = try config.strings("client.proxyProtocolFrom")
        self.tls.proxyProtocolFrom = try config.strings("tls.proxyProtocolFrom")
        self.tls.port = try config.int("tls.port", in: 0...65535)
        self.tls.files = try config.scoped("tls") { try GatewayConfiguration.tlsFiles($0) }
        self.tunnel.port = try config.int("tunnel.port", in: 0...65535)
        self.tunnel.files = try config.scoped("tunnel") { try GatewayConfiguration.tlsFiles($0) }
        self.tunnel.allowCleartext = try config.bool("tunnel.allowCleartext")
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            .string("host", d.host, "Address of the client, TLS and tunnel listeners.", aliases: ["--host"]),
            .int(
                "client.port", d.client.port, "Client port, h2c and HTTP/1.1 (0: any free port).",
                aliases: ["--client-port"]),
            .strings(
                "client.proxyProtocolFrom", d.client.proxyProtocolFrom,
                "Load balancers (CIDR) whose client-port connections start with a PROXY protocol v2 header.",
                aliases: ["--proxy-protocol-from"]),
            .strings(
                "tls.proxyProtocolFrom", d.tls.proxyProtocolFrom,
                "Load balancers (CIDR) whose TLS-port connections start with a PROXY protocol v2 header.",
                aliases: ["--tls-proxy-protocol-from"]),
            .int("tls.port", d.tls.port, "TLS client port (ALPN h2, http/1.1).", aliases: ["--tls-port"]),
            .string(
                "tls.certificateChainFile", "",
                "PEM certificate chain of the TLS client port (empty: no TLS listener). Reloadable.",
                aliases: ["--tls-cert"]),
            .string(
                "tls.privateKeyFile", "", "PEM private key of the TLS client port. Reloadable.", aliases: ["--tls-key"]),
            .int("tunnel.port", d.tunnel.port, "Car tunnel port.", aliases: ["--tunnel-port"]),
            .string(
                "tunnel.certificateChainFile", "",
                "PEM certificate chain for car tunnels (empty: cleartext). Reloadable.", aliases: ["--tunnel-tls-cert"]),
            .string(
                "tunnel.privateKeyFile", "", "PEM private key for car tunnels. Reloadable.",
                aliases: ["--tunnel-tls-key"]),
            .bool(
                "tunnel.allowCleartext", d.tunnel.allowCleartext, "Accept cleartext tunnels from non-loopback peers.",
                aliases: ["--allow-cleartext-tunnels"]),
        ])
    }
}

extension GatewayConfiguration.Admin {
    /// ## Configuration keys:
    /// - `host` (string, default 127.0.0.1), `port` (int, default 9090, 0 = any free).
    /// - `tokenFile` (string, default empty = no token): the admin bearer token, one line.
    /// - `allowedHosts` (string list, default empty): Host names answered besides loopback.
    /// - `probesHost` (string, default empty = none), `probesPort` (int, default 9091): a read-only
    ///   listener for /healthz, /readyz and /metrics.
    public init(config: ConfigReader) throws {
        self.init()
        self.host = try config.string("host")
        self.port = try config.int("port", in: 0...65535)
        self.tokenFile = try config.nonEmptyString("tokenFile")
        self.allowedHosts = try config.strings("allowedHosts")
        self.probesHost = try config.nonEmptyString("probesHost")
        self.probesPort = try config.int("probesPort", in: 0...65535)
    }

    static var configKeys: ConfigSchema {
        ConfigSchema([
            .string("host", Self.defaults.host, "Admin host (keep it on loopback)."),
            .int(
                "port", Self.defaults.port, "Admin port: /healthz, /readyz, /metrics, /admin/*.",
                aliases: ["--admin-port"]),
            .string(
                "tokenFile", "", "File holding the admin bearer token (empty: the admin API needs none).",
                aliases: ["--admin-token-file"]),
            .strings(
                "allowedHosts", [], "Host names the admin API answers besides loopback (DNS-rebinding guard).",
                aliases: ["--admin-allowed-host"]),
            .string(
                "probesHost", "", "Address of a read-only /healthz, /readyz, /metrics listener (empty: none).",
                aliases: ["--probes-host"]),
            .int("probesPort", Self.defaults.probesPort, "Port of the probes listener.", aliases: ["--probes-port"]),
        ])
    }
}

extension GatewayConfiguration.Limits {
    /// ## Configuration keys:
    /// - `maxBodyBytes` (int, default 1048576, 1…1 GiB): request body limit. Reloadable.
    /// - `bodyTimeoutSeconds` (double, default 30): time to send the body. Reloadable.
    /// - `maxBufferedBodyBytes` (int, default 268435456, 1 KiB…64 GiB): request-body bytes held over all requests. Reloadable.
    /// - `maxBufferedAnswerBytesPerStream` (int, default 1048576, 0…1 GiB): answer bytes held for one slow client. Reloadable.
    /// - `maxBufferedAnswerBytes` (int, default 268435456, 0…64 GiB): answer bytes held for slow clients over all streams. Reloadable.
    /// - `maxInFlightRequests` (int, default 10000): completions in flight over all clients. Reloadable.
    /// - `maxInFlightPerEventLoop` (int, default 4096): completions admitted and unfinished per event loop. Reloadable.
    /// - `shedLagMilliseconds` (double, default 10, 0 = off): the event-loop lag an overloaded loop is held at by shedding. Reloadable.
    /// - `clientHTTP2` (scoped): ``HTTP2Configuration/init(config:)`` for client connections; new connections get reloads.
    /// - `tunnelHTTP2` (scoped): ``HTTP2Configuration/init(config:)`` for car tunnels; new tunnels get reloads.
    public init(config: ConfigReader) throws {
        self.init()
        self.maxBodyBytes = try config.int("maxBodyBytes", in: 1...(1 << 30))
        self.bodyTimeout = try config.seconds("bodyTimeoutSeconds")
        self.maxBufferedBodyBytes = try config.int("maxBufferedBodyBytes", in: 1024...(64 << 30))
        self.maxBufferedAnswerBytesPerStream = try config.int("maxBufferedAnswerBytesPerStream", in: 0...(1 << 30))
        self.maxBufferedAnswerBytes = try config.int("maxBufferedAnswerBytes", in: 0...(64 << 30))
        self.maxInFlightRequests = try config.int("maxInFlightRequests", in: 1...10_000_000)
        self.maxInFlightPerEventLoop = try config.int("maxInFlightPerEventLoop", in: 1...10_000_000)
        self.shedLag = .nanoseconds(Int64(try config.double("shedLagMilliseconds", in: 0...60_000) * 1e6))
        self.clientHTTP2 = try config.scoped("clientHTTP2") { try HTTP2Configuration(config: $0) }
        self.tunnelHTTP2 = try config.scoped("tunnelHTTP2") { try HTTP2Configuration(config: $0) }
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            ConfigSchema([
                .int("maxBodyBytes", d.maxBodyBytes, "Request body limit, bytes (larger: 413). Reloadable."),
                .double(
                    "bodyTimeoutSeconds", Double(d.bodyTimeout.nanoseconds) / 1e9,
                    "How long a client may take to send its request body. Reloadable."),
                .int(
                    "maxBufferedBodyBytes", d.maxBufferedBodyBytes,
                    "Request-body bytes held at once over all requests; past it, 503 server_overloaded. Reloadable."),
                .int(
                    "maxBufferedAnswerBytesPerStream", d.maxBufferedAnswerBytesPerStream,
                    "Answer bytes held for one client (HTTP/2 or HTTP/1.1) that reads slower than its car or central answers, so the car's slot is freed when its job ends; past it the upstream waits for the client (0: always waits). Reloadable."
                ),
                .int(
                    "maxBufferedAnswerBytes", d.maxBufferedAnswerBytes,
                    "Answer bytes held for slow clients at once over all streams; past it their upstreams wait for them. Reloadable."
                ),
                .int(
                    "maxInFlightRequests", d.maxInFlightRequests,
                    "Completion requests in flight at once over all clients; more get 503. Reloadable."),
                .int(
                    "maxInFlightPerEventLoop", d.maxInFlightPerEventLoop,
                    "Completion requests admitted and unfinished per event loop; more get 503 server_overloaded. Reloadable."
                ),
                .double(
                    "shedLagMilliseconds", Double(d.shedLag.nanoseconds) / 1e6,
                    "Event-loop lag (queueing delay) an overloaded loop is held at: past it, a busy loop refuses a growing share of new requests with 503 server_overloaded and Retry-After (0: off). Reloadable."
                ),
            ]),
            ConfigSchema(scope: "clientHTTP2", HTTP2Configuration.configKeys(defaults: d.clientHTTP2)),
            ConfigSchema(scope: "tunnelHTTP2", HTTP2Configuration.configKeys(defaults: d.tunnelHTTP2)),
        ])
    }
}

extension GatewayConfiguration.Dispatch {
    /// ## Configuration keys:
    /// - `firstTokenTimeoutSeconds` (double, default 15): wait for one upstream's first token. Reloadable.
    /// - `maxAttempts` (int, default 3, 1…10): upstreams tried per request. Reloadable.
    /// - `policy` (string, default predictive): how cars are chosen. Restart.
    /// - `ttftObjectiveMilliseconds` (double, default 1000, ≥ 1): TTFT objective without `x-slo-ttft-ms`. Reloadable.
    /// - `tpotObjectiveMilliseconds` (double, default 100, ≥ 1): time-per-token objective. Reloadable.
    /// - `affinity` (bool, default true): prefix-cache affinity. Restart.
    /// - `affinityEntries` (int, default 100000): prefixes remembered per (model, zone). Restart.
    /// - `affinityTtlSeconds` (double, default 600): life of a remembered prefix after its last use. Restart.
    /// - `capacityWaitSeconds` (double, default 5, 0…600): a lost (or departing) stream's wait for a busy zone. Reloadable.
    public init(config: ConfigReader) throws {
        self.init()
        self.firstTokenTimeout = try config.seconds("firstTokenTimeoutSeconds")
        self.maxAttempts = try config.int("maxAttempts", in: 1...10)
        self.policy = SchedulingPolicy(
            rawValue: try config.choice("policy", of: SchedulingPolicy.allCases.map(\.rawValue)))!
        self.defaultTTFTObjectiveMilliseconds = try config.double("ttftObjectiveMilliseconds", in: 1...3_600_000)
        self.tpotObjectiveMilliseconds = try config.double("tpotObjectiveMilliseconds", in: 1...3_600_000)
        self.maxMigrations = try config.int("maxMigrations", in: 0...100)
        self.hedging = try config.bool("hedging")
        self.hedgeFactor = try config.double("hedgeFactor", in: 1...1_000)
        self.minimumHedgeDelay = try config.seconds("minimumHedgeDelaySeconds", minimum: 0)
        self.hedgeBudget = try config.double("hedgeBudget", in: 0...1)
        self.interTokenTimeout = try config.seconds("interTokenTimeoutSeconds")
        self.attemptTimeout = try config.seconds("attemptTimeoutSeconds")
        self.capacityWait = try config.seconds("capacityWaitSeconds", minimum: 0, maximum: 600)
        self.affinity = try config.bool("affinity")
        self.affinityEntries = try config.int("affinityEntries", in: 1...100_000_000)
        self.affinityTTL = try config.seconds("affinityTtlSeconds")
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            .double(
                "firstTokenTimeoutSeconds", Double(d.firstTokenTimeout.nanoseconds) / 1e9,
                "How long to wait for one upstream's first token before trying the next; 3× its predicted time to first token when that is longer (a long prompt's prefill). Reloadable."
            ),
            .int("maxAttempts", d.maxAttempts, "Upstreams tried per request before giving up (1–10). Reloadable."),
            .string(
                "policy", d.policy.rawValue,
                "How cars are chosen: \(SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", ")).",
                aliases: ["--policy"]),
            .double(
                "ttftObjectiveMilliseconds", d.defaultTTFTObjectiveMilliseconds,
                "Time-to-first-token objective for requests without x-slo-ttft-ms, ms. Reloadable.",
                aliases: ["--slo-ttft-ms"]),
            .double(
                "tpotObjectiveMilliseconds", d.tpotObjectiveMilliseconds,
                "Time-per-output-token objective, ms. Reloadable."),
            .int(
                "maxMigrations", d.maxMigrations,
                "Continuations per request after tokens reached the client (mid-stream failover). Reloadable."),
            .bool(
                "hedging", d.hedging, "Race a second attempt when the first token is later than predicted. Reloadable."),
            .double(
                "hedgeFactor", d.hedgeFactor,
                "Hedge when the first token is later than predicted TTFT × this (exp(1.645 σ)). Reloadable."),
            .double(
                "minimumHedgeDelaySeconds", Double(d.minimumHedgeDelay.nanoseconds) / 1e9,
                "The hedge trigger's floor. Reloadable."),
            .double(
                "hedgeBudget", d.hedgeBudget,
                "Hedges allowed as a share of requests over a sliding window (0–1). Restart."),
            .double(
                "interTokenTimeoutSeconds", Double(d.interTokenTimeout.nanoseconds) / 1e9,
                "Floor of the inter-token deadline: max(this, 10 × predicted time per token). Reloadable."),
            .double(
                "attemptTimeoutSeconds", Double(d.attemptTimeout.nanoseconds) / 1e9,
                "The total deadline of one attempt. Reloadable."),
            .double(
                "capacityWaitSeconds", Double(d.capacityWait.nanoseconds) / 1e9,
                "How long a stream lost after tokens reached its client waits for a slot to continue on when all of its zone's capacity for the model is busy (0–600; 0: fail at once); a departing car's stream waits as long to move while the car streams on. Nothing else waits. Reloadable."
            ),
            .bool(
                "affinity", d.affinity,
                "Prefix-cache affinity: a conversation's next turn is scored towards the car holding its prefix. Restart."
            ),
            .int("affinityEntries", d.affinityEntries, "Conversation prefixes remembered per (model, zone). Restart."),
            .double(
                "affinityTtlSeconds", Double(d.affinityTTL.nanoseconds) / 1e9,
                "How long a remembered prefix lives after its last use. Restart."),
        ])
    }
}
