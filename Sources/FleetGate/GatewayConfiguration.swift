public import FleetGeo
public import FleetHTTP2
public import FleetProtocol
public import FleetScheduler
public import NIOCore

/// Everything the gateway needs to run. Defaults follow DESIGN.md's Contracts.
public struct GatewayConfiguration: Sendable {
    /// Host for the client and tunnel listeners.
    public var host: String
    /// Client port (h2c and HTTP/1.1). 0 picks a free one.
    public var clientPort: Int
    /// Car tunnel port.
    public var tunnelPort: Int
    /// Admin host (loopback by default) and port.
    public var adminHost: String
    public var adminPort: Int
    /// A separate read-only listener for `/healthz`, `/readyz` and `/metrics` only, e.g. on the
    /// pod address for kubelet and Prometheus; nil (the default): none (the probes stay on the admin port).
    public var probesHost: String?
    /// Its port (0 picks a free one).
    public var probesPort: Int = 9091
    /// A file holding the admin bearer token (one line; surrounding whitespace ignored). When set,
    /// every `/admin/…` request needs `Authorization: Bearer <token>`; nil (the default): the admin
    /// API is open to whoever can reach its loopback port (development; warned at start). Probes
    /// and metrics never need it.
    public var adminTokenFile: String?
    /// Host names the admin API answers besides loopback (`127.0.0.1`, `localhost`, `[::1]`) and
    /// ``adminHost`` — a DNS-rebinding guard: any other `Host`, or an `Origin` naming another host,
    /// gets 403 (default: none).
    public var adminAllowedHosts: [String] = []
    /// The application key file (YAML: SHA-256 of each key and its policy — models, central only,
    /// requests/s, tokens/min, concurrent streams; `docs/operations.md`). Reloaded on SIGHUP and
    /// `POST /admin/keys/reload`. Nil (the default): only ``apiKeys``.
    public var apiKeysFile: String?
    /// API keys accepted as `Authorization: Bearer`, without limits; with no key here or in
    /// ``apiKeysFile`` there is no authentication (development).
    public var apiKeys: Set<String>
    /// The fleet secret that signs vehicle tokens and keys pseudonyms. Never logged.
    public var fleetSecret: String
    /// The region map.
    public var regionMap: RegionMap
    /// The file ``regionMap`` was loaded from, re-read on reload (SIGHUP, `POST /admin/regions/reload`).
    public var regionsFile: String?
    /// A MaxMind DB (GeoLite2/GeoIP2/DB-IP country or city, or the one `scripts/build-geoip.py` makes).
    /// Nil: every public address follows the map's `noDatabase` rule (warned once at start).
    public var geoipDatabase: String?
    /// Socket peers (CIDR) whose X-Forwarded-For is trusted. Empty: forwarding headers are ignored.
    public var trustedProxies: [String]
    /// Bind any free port when a configured one is taken (the demo); `serve` fails instead.
    public var fallbackToFreePorts: Bool = false
    /// Load balancers (CIDR) that send a PROXY protocol v2 header on the cleartext client port.
    /// A connection from inside these ranges must start with the header (else it is closed) and its
    /// source is the client; a connection from anywhere else is a direct client whose bytes are
    /// never parsed as PROXY. Empty (the default): PROXY protocol off. The header's source never
    /// makes `X-Forwarded-For` believed.
    public var proxyProtocolFrom: [String] = []
    /// The same for the TLS client port (the PROXY header precedes the TLS handshake).
    public var tlsProxyProtocolFrom: [String] = []
    /// Request body limit.
    public var maxBodyBytes: Int
    /// How long a client may take to send its request body.
    public var bodyTimeout: TimeAmount
    /// How long to wait for the first token from one upstream before trying the next.
    public var firstTokenTimeout: TimeAmount
    /// Upstreams tried per request before giving up.
    public var maxAttempts: Int
    /// Completion requests in flight at once, over all clients; more get 429.
    public var maxInFlightRequests: Int
    /// How long a car has to send its hello after connecting.
    public var helloTimeout: TimeAmount
    /// How often each car is PINGed for RTT and liveness.
    public var carPingInterval: TimeAmount
    /// HTTP/2 settings for client connections.
    public var clientHTTP2: HTTP2Configuration
    /// HTTP/2 settings for car tunnels (the gateway is the client there).
    public var tunnelHTTP2: HTTP2Configuration
    /// Allow cleartext tunnels from non-loopback peers (production uses TLS).
    public var allowCleartextTunnels: Bool
    /// TLS for clients on ``tlsPort``: PEM certificate chain and key files. Nil: no TLS listener.
    public var tls: TLSFiles?
    /// Client TLS port (ALPN `h2`, `http/1.1`).
    public var tlsPort: Int
    /// TLS for car tunnels (ALPN `h2`). When set, every tunnel is TLS.
    public var tunnelTLS: TLSFiles?
    /// Central OpenAI-compatible capacity, per region; used when no car in the zone can serve,
    /// or (policy `predictive`) when no car is predicted to meet the request's TTFT objective.
    public var central: [CentralEndpoint]
    /// How cars are chosen (`predictive` by default; the others are the baselines it is compared with).
    public var schedulingPolicy: SchedulingPolicy = .predictive
    /// The time-to-first-token objective for requests without `x-slo-ttft-ms`, in ms.
    public var defaultTTFTObjectiveMilliseconds: Double = 1_000
    /// The time-per-output-token objective, in ms.
    public var tpotObjectiveMilliseconds: Double = 100
    /// Continuations per request after tokens reached the client (mid-stream failover).
    public var maxMigrations: Int = 3
    /// Whether a second attempt races a first token that is later than predicted.
    public var hedging: Bool = true
    /// The hedge trigger: predicted TTFT × this factor (DESIGN.md: exp(1.645 σ); 2.3 is σ = 0.5).
    public var hedgeFactor: Double = 2.3
    /// The hedge trigger's floor.
    public var minimumHedgeDelay: TimeAmount = .milliseconds(250)
    /// Hedges allowed, as a share of requests over a sliding window (gRPC's retry throttling shape).
    public var hedgeBudget: Double = 0.05
    /// The inter-token deadline's floor: an attempt silent for max(this, 10 × predicted time per
    /// token) after its first token is lost and the stream fails over.
    public var interTokenTimeout: TimeAmount = .seconds(2)
    /// How often a car running jobs is PINGed; two missed PINGs mean it is dead.
    public var busyPingInterval: TimeAmount = .seconds(1)
    /// The total deadline of one attempt.
    public var attemptTimeout: TimeAmount = .minutes(10)

    /// One central endpoint: the region it serves, its base URL (ending in `/v1`) and its concurrency.
    public struct CentralEndpoint: Sendable, Hashable {
        public var region: String
        public var baseURL: String
        public var maxConcurrent: Int
        /// What the scheduler assumes of this endpoint: time to first token and per token, ms.
        public var expectedTTFTMilliseconds: Double
        public var expectedTPOTMilliseconds: Double
        /// What the endpoint can do when a stream moves to it mid-answer (a generic server: `none`).
        public var continuation: ContinuationMode
        public init(
            region: String, baseURL: String, maxConcurrent: Int = 256, expectedTTFTMilliseconds: Double = 300,
            expectedTPOTMilliseconds: Double = 20, continuation: ContinuationMode = .none
        ) {
            self.continuation = continuation
            self.region = region
            self.baseURL = baseURL
            self.maxConcurrent = maxConcurrent
            self.expectedTTFTMilliseconds = expectedTTFTMilliseconds
            self.expectedTPOTMilliseconds = expectedTPOTMilliseconds
        }
    }

    /// Paths of a PEM certificate chain and its private key.
    public struct TLSFiles: Sendable, Hashable {
        public var certificateChain: String
        public var privateKey: String
        public init(certificateChain: String, privateKey: String) {
            self.certificateChain = certificateChain
            self.privateKey = privateKey
        }
    }

    public init(
        host: String = "127.0.0.1", clientPort: Int = 8080, tunnelPort: Int = 7443, adminHost: String = "127.0.0.1",
        adminPort: Int = 9090, apiKeys: Set<String> = [], fleetSecret: String, regionMap: RegionMap = .default,
        trustedProxies: [String] = [], maxBodyBytes: Int = 1 << 20, bodyTimeout: TimeAmount = .seconds(30),
        firstTokenTimeout: TimeAmount = .seconds(15), maxAttempts: Int = 3, maxInFlightRequests: Int = 10_000,
        helloTimeout: TimeAmount = .seconds(5),
        carPingInterval: TimeAmount = .seconds(5), clientHTTP2: HTTP2Configuration = .defaults,
        tunnelHTTP2: HTTP2Configuration = HTTP2Configuration(maxConcurrentStreams: 64, idleTimeout: nil),
        allowCleartextTunnels: Bool = false, tls: TLSFiles? = nil, tlsPort: Int = 8443, central: [CentralEndpoint] = [],
        tunnelTLS: TLSFiles? = nil
    ) {
        self.host = host
        self.clientPort = clientPort
        self.tunnelPort = tunnelPort
        self.adminHost = adminHost
        self.adminPort = adminPort
        self.apiKeys = apiKeys
        self.fleetSecret = fleetSecret
        self.regionMap = regionMap
        self.geoipDatabase = nil
        self.adminTokenFile = nil
        self.probesHost = nil
        self.apiKeysFile = nil
        self.regionsFile = nil
        self.trustedProxies = trustedProxies
        self.maxBodyBytes = maxBodyBytes
        self.bodyTimeout = bodyTimeout
        self.firstTokenTimeout = firstTokenTimeout
        self.maxAttempts = maxAttempts
        self.maxInFlightRequests = maxInFlightRequests
        self.helloTimeout = helloTimeout
        self.carPingInterval = carPingInterval
        self.clientHTTP2 = clientHTTP2
        self.tunnelHTTP2 = tunnelHTTP2
        self.allowCleartextTunnels = allowCleartextTunnels
        self.tls = tls
        self.tlsPort = tlsPort
        self.central = central
        self.tunnelTLS = tunnelTLS
    }
}
