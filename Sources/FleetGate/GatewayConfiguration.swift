public import FleetConfiguration
public import FleetGeo
public import FleetHTTP2
public import FleetProtocol
public import FleetScheduler
public import NIOCore

/// Everything the gateway needs to run, in the shape of grpc-swift-nio-transport's
/// `HTTP2ServerTransport.Config`: one nested type per concern, each with documented `defaults`
/// (DESIGN.md's Contracts) and an `init(config:)` in `GatewayConfiguration+ConfigReader.swift`
/// that lists the keys it reads. `docs/configuration.md` lists every key with its default.
///
/// To add a setting: add the property (with its default) to the nested type below, one line to
/// that type's `configKeys` and one read to its `init(config:)`; the key test and the docs check
/// then tell you if the docs miss it.
public struct GatewayConfiguration: Sendable {
    /// Client, TLS and tunnel listeners (`listeners.*`).
    public var listeners: Listeners
    /// The admin port (`admin.*`).
    public var admin: Admin
    /// Request and connection limits, including all HTTP/2 limits (`limits.*`).
    public var limits: Limits
    /// How requests are dispatched to cars (`dispatch.*`).
    public var dispatch: Dispatch
    /// Region map, GeoIP database and trusted proxies (`geo.*`).
    public var geo: Geo
    /// Car tunnels (`tunnel.*`).
    public var tunnel: Tunnel
    /// Central capacity (`central.*`).
    public var central: Central
    /// Audits of car results (`audit.*`).
    public var audit: Audit = .defaults
    /// API keys (`auth.*`). Secret.
    public var auth: Auth
    /// Logging (`logging.*`).
    public var logging: Logging
    /// Event loop threads; 0 means one per core (`eventLoopThreads`).
    public var eventLoopThreads: Int
    /// The fleet secret that signs vehicle tokens and keys pseudonyms (`fleetSecret` from the
    /// environment, or `fleetSecretFile`). Never logged, never shown.
    public var fleetSecret: String
    /// Replicas sharing one fleet through etcd (`cluster.*`, issue #21); off by default.
    public var cluster: Cluster = .defaults
    /// Bind any free port when a configured one is taken (the demo); `serve` fails instead. Not a key.
    public var fallbackToFreePorts: Bool = false
    /// The value of every key when this configuration was read (``read(from:again:)``), which a reload
    /// compares to name the keys it changed; empty for a configuration built in code. Not a key.
    public var readValues = ConfigValues()

    /// A configuration with every default but the fleet secret.
    public init(
        fleetSecret: String, listeners: Listeners = .defaults, admin: Admin = .defaults, limits: Limits = .defaults,
        dispatch: Dispatch = .defaults, geo: Geo = .defaults, tunnel: Tunnel = .defaults, central: Central = .defaults,
        auth: Auth = .defaults, logging: Logging = .defaults, eventLoopThreads: Int = 0
    ) {
        self.fleetSecret = fleetSecret
        self.listeners = listeners
        self.admin = admin
        self.limits = limits
        self.dispatch = dispatch
        self.geo = geo
        self.tunnel = tunnel
        self.central = central
        self.auth = auth
        self.logging = logging
        self.eventLoopThreads = eventLoopThreads
    }

    /// The client, TLS and tunnel listeners.
    public struct Listeners: Sendable, Hashable {
        /// Address for the client, TLS and tunnel listeners.
        public var host: String = "127.0.0.1"
        /// The cleartext client listener (h2c and HTTP/1.1).
        public var client: Client = .init()
        /// The TLS client listener (ALPN `h2`, `http/1.1`); off unless a certificate is configured.
        public var tls: TLS = .init()
        /// The car tunnel listener.
        public var tunnel: Tunnel = .init()
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}

        /// The cleartext client listener.
        public struct Client: Sendable, Hashable {
            /// Port; 0 picks a free one.
            public var port: Int = 8080
            /// Load balancers (CIDR) that send a PROXY protocol v2 header. A connection from inside
            /// these ranges must start with the header (else it is closed) and its source is the
            /// client; a connection from anywhere else is a direct client whose bytes are never
            /// parsed as PROXY. Empty (the default): PROXY protocol off. The header's source never
            /// makes `X-Forwarded-For` believed (issue #18 row 1).
            public var proxyProtocolFrom: [String] = []
            public init() {}
        }

        /// The TLS client listener.
        public struct TLS: Sendable, Hashable {
            /// Port.
            public var port: Int = 8443
            /// PEM certificate chain and key; nil: no TLS listener.
            public var files: TLSFiles?
            /// Load balancers (CIDR) that send a PROXY protocol v2 header before the TLS handshake;
            /// as for the cleartext port. Empty (the default): off.
            public var proxyProtocolFrom: [String] = []
            public init() {}
        }

        /// The car tunnel listener.
        public struct Tunnel: Sendable, Hashable {
            /// Port.
            public var port: Int = 7443
            /// PEM certificate chain and key; when set, every tunnel is TLS (ALPN `h2`).
            public var files: TLSFiles?
            /// Accept cleartext tunnels from non-loopback peers (production uses TLS).
            public var allowCleartext: Bool = false
            public init() {}
        }
    }

    /// The admin listener: health, readiness, metrics, the fleet, reloads.
    public struct Admin: Sendable, Hashable {
        /// Host; loopback by default (DESIGN.md "Admin and probes").
        public var host: String = "127.0.0.1"
        /// Port.
        public var port: Int = 9090
        /// A file holding the admin bearer token (one line, ≥ 16 bytes). When set, every `/admin/…`
        /// request needs `Authorization: Bearer <token>`; nil (the default): the admin API is open
        /// to whoever reaches its loopback port (warned at start). Probes and metrics never need it.
        public var tokenFile: String?
        /// Host names the admin API answers besides loopback and ``host`` — a DNS-rebinding guard:
        /// any other `Host`, or an `Origin` naming another host, gets 403 (default: none).
        public var allowedHosts: [String] = []
        /// A separate read-only listener for `/healthz`, `/readyz` and `/metrics` only, e.g. on the
        /// pod address; nil (the default): none (the probes stay on the admin port).
        public var probesHost: String?
        /// Its port (0 picks a free one).
        public var probesPort: Int = 9091
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// Request and connection limits.
    public struct Limits: Sendable {
        /// Request body limit, bytes.
        public var maxBodyBytes: Int = 1 << 20
        /// How long a client may take to send its request body.
        public var bodyTimeout: TimeAmount = .seconds(30)
        /// Request-body bytes held at once over all requests (received and not yet answered); a
        /// request whose body would pass it gets 503 `server_overloaded`.
        public var maxBufferedBodyBytes: Int = 256 << 20
        /// Answer bytes the gateway holds for one client (HTTP/2 or HTTP/1.1) that reads slower than its upstream
        /// answers, so the car's slot is not held by the client's reading speed; past it the
        /// upstream waits for the client (flow control). Zero: the upstream always waits.
        public var maxBufferedAnswerBytesPerStream: Int = 1 << 20
        /// Answer bytes held for slow clients at once, over all streams.
        public var maxBufferedAnswerBytes: Int = 256 << 20
        /// Completion requests in flight at once, over all clients; more get 503.
        public var maxInFlightRequests: Int = 10_000
        /// Completion requests admitted and unfinished on one event loop; more get 503
        /// `server_overloaded` (issue #19).
        public var maxInFlightPerEventLoop: Int = 4096
        /// The queueing delay (event-loop lag, less time spent waiting for a CPU) an overloaded
        /// loop is held at: past it, a busy loop refuses a growing share of new requests (503
        /// `server_overloaded`, `Retry-After`); zero turns delay shedding off.
        public var shedLag: TimeAmount = .milliseconds(10)
        /// What each event loop's ``LoadShedder`` enforces.
        var shedding: LoadShedder.Configuration {
            .init(maxInFlight: self.maxInFlightPerEventLoop, lagThreshold: self.shedLag)
        }
        /// HTTP/2 settings and abuse limits of client connections.
        public var clientHTTP2: HTTP2Configuration = Self.clientHTTP2Defaults
        /// The client connections' HTTP/2 defaults: an idle connection closes after 60 s (issue #18
        /// row 4: idle keep-alive connections must not stay open indefinitely).
        public static var clientHTTP2Defaults: HTTP2Configuration { HTTP2Configuration(idleTimeout: .seconds(60)) }
        /// HTTP/2 settings of car tunnels (the gateway is the client there).
        public var tunnelHTTP2: HTTP2Configuration = Self.tunnelHTTP2Defaults
        /// The tunnel's HTTP/2 defaults: fewer streams, no idle timeout (cars stay connected).
        public static var tunnelHTTP2Defaults: HTTP2Configuration {
            HTTP2Configuration(maxConcurrentStreams: 64, idleTimeout: nil)
        }
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// How requests are dispatched.
    public struct Dispatch: Sendable, Hashable {
        /// How long to wait for the first token from one upstream before trying the next.
        public var firstTokenTimeout: TimeAmount = .seconds(15)
        /// Upstreams tried per request before giving up.
        public var maxAttempts: Int = 3
        /// How cars are chosen (`predictive`; the others are the baselines it is compared with).
        public var policy: SchedulingPolicy = .predictive
        /// The time-to-first-token objective for requests without `x-slo-ttft-ms`, ms.
        public var defaultTTFTObjectiveMilliseconds: Double = 1_000
        /// The time-per-output-token objective, ms.
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
        /// The total deadline of one attempt.
        public var attemptTimeout: TimeAmount = .minutes(10)
        /// How long a stream whose upstream was lost after tokens reached its client waits for a slot
        /// when all of its zone's capacity for the model is busy (``CapacityWait``); zero: it fails
        /// at once.
        public var capacityWait: TimeAmount = .seconds(5)
        /// Prefix-cache affinity (issue #14): send a conversation's next turn towards the car that
        /// holds its prefix, as a term in the predictive score. Off: no hashing on the request path.
        public var affinity: Bool = true
        /// Conversation prefixes remembered per (model, zone).
        public var affinityEntries: Int = 100_000
        /// How long a remembered prefix lives after its last use.
        public var affinityTTL: TimeAmount = .minutes(10)
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// Where clients are.
    public struct Geo: Sendable {
        /// The region map.
        public var regionMap: RegionMap = .default
        /// The file ``regionMap`` was loaded from, re-read on reload; nil: the built-in map.
        public var regionsFile: String?
        /// A MaxMind DB; nil: every public address follows the map's `noDatabase` rule.
        public var databaseFile: String?
        /// Addresses (CIDR) whose X-Forwarded-For is trusted. Empty: forwarding headers are ignored.
        public var trustedProxies: [String] = []
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// Car tunnels.
    public struct Tunnel: Sendable, Hashable {
        /// How long a car has to send its hello after connecting.
        public var helloTimeout: TimeAmount = .seconds(5)
        /// How often each car is PINGed for RTT and liveness.
        public var pingInterval: TimeAmount = .seconds(5)
        /// How often a car running jobs is PINGed; two missed PINGs mean it is dead.
        public var busyPingInterval: TimeAmount = .seconds(1)
        /// How a car proves who it is (issue #20): a vehicle certificate on an mTLS tunnel (the
        /// default), or an HMAC token under the fleet secret (development, tests, benchmarks only).
        public var auth: TunnelAuth = .certificate
        /// PEM file of the fleet CA(s) whose vehicle certificates are accepted (`fleetgate pki init-ca`);
        /// several certificates in the file let a CA rotate. Required with ``auth`` `certificate`.
        public var caFile: String?
        /// The revocation file (`docs/security.md`): serials and vehicle ids refused. Re-read when it
        /// changes (polled), on SIGHUP and on `POST /admin/reload`; connected cars it names are told
        /// `quarantine` and closed. Nil: nothing is revoked.
        public var revocationFile: String?
        /// How often the revocation and CA files, and the credential files (TLS certificates and keys,
        /// API and application key files: ``CredentialFilesWatcher``), are checked for changes.
        public var trustPollInterval: TimeAmount = .seconds(2)
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// How a car authenticates its tunnel.
    public enum TunnelAuth: String, Sendable, Hashable, CaseIterable {
        /// mTLS with a vehicle certificate from the fleet CA (production).
        case certificate
        /// An HMAC token under the fleet secret (`fleetgate token issue`): development only.
        case token
    }

    /// Audits of car results on trusted capacity (issue #20; `docs/security.md`).
    public struct Audit: Sendable, Hashable {
        /// Trusted runtimes, per region, that score text by teacher forcing (`/v1/completions` with
        /// `echo` and `logprobs`, as llama-cpp-python serves). A zone without one is not audited.
        public var endpoints: [CentralEndpoint] = []
        /// Share of completed car requests audited, in every zone without its own share.
        public var fraction: Double = 0.05
        /// Per-zone shares (`zone=fraction`), overriding ``fraction``.
        public var zoneFractions: [String: Double] = [:]
        /// An audit fails when the mean log-likelihood per token of the car's text is below this.
        public var minMeanLogprob: Double = -4.5
        /// Audits shorter than this many scored tokens are not counted (too little evidence).
        public var minTokens: Int = 4
        /// Completions waiting to be scored; past it new ones are dropped (and counted).
        public var queueCapacity: Int = 64
        /// Audits scored at once.
        public var concurrency: Int = 1
        /// A car whose reputation (posterior mean share of passed audits) falls below this is quarantined.
        public var quarantineBelow: Double = 0.95
        /// The chat template the audit renders prompts with: `smollm2` or `chatml`.
        public var chatTemplate: String = "smollm2"
        /// Where quarantines are kept across restarts (``FleetTrust``); nil: in memory only.
        public var quarantineFile: String?
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

    /// Central OpenAI-compatible capacity, per region; used when no car in the zone can serve,
    /// or (policy `predictive`) when no car is predicted to meet the request's TTFT objective.
    public struct Central: Sendable, Hashable {
        /// The endpoints.
        public var endpoints: [CentralEndpoint] = []
        /// PEM CA(s) trusted for `https://` endpoints besides the system's roots (a private CA).
        public var caFile: String?
        /// The defaults: none.
        public static var defaults: Self { Self() }
        public init(endpoints: [CentralEndpoint] = []) { self.endpoints = endpoints }
    }

    /// API keys.
    public struct Auth: Sendable, Hashable {
        /// Keys accepted as `Authorization: Bearer`; empty means no authentication (development). Secret.
        public var apiKeys: Set<String> = []
        /// The application key file (YAML: SHA-256 of each key and its policy — models, central
        /// only, requests/s, tokens/min, concurrent streams; `docs/operations.md`). Reloaded on
        /// SIGHUP and `POST /admin/keys/reload`. Nil (the default): only ``apiKeys``, unlimited.
        public var appKeysFile: String?
        /// The file ``apiKeys`` were read from, if any: a key file that is configured requires keys even
        /// when it holds none — emptied to revoke every key, it must not switch authentication off.
        public var apiKeysFile: String?
        /// Web origins (`https://app.example.com`, or `*` for any) whose pages may call the client API
        /// from a browser: CORS (``CORSPolicy``). Empty (the default): none, and no CORS header is sent.
        public var corsOrigins: [String] = []
        /// Whether requests must present a key: any key, or any key file, is configured.
        public var requiresKeys: Bool { !self.apiKeys.isEmpty || self.apiKeysFile != nil || self.appKeysFile != nil }
        /// The defaults: no keys.
        public static var defaults: Self { Self() }
        public init(apiKeys: Set<String> = [], appKeysFile: String? = nil, apiKeysFile: String? = nil) {
            self.apiKeys = apiKeys
            self.appKeysFile = appKeysFile
            self.apiKeysFile = apiKeysFile
        }
    }

    /// Logging.
    public struct Logging: Sendable, Hashable {
        /// The level (trace, debug, info, notice, warning, error, critical).
        public var level: String = "info"
        /// The defaults.
        public static var defaults: Self { Self() }
        public init() {}
    }

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
        /// Whether its runtime caches prompt prefixes (vLLM's automatic prefix caching, SGLang's
        /// radix cache): with prefix-cache affinity, the prefix central served last is credited.
        public var prefixCache: Bool = false
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
}
