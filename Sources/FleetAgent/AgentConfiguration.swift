public import FleetHTTP2
public import FleetProtocol
public import NIOCore

/// What the car agent needs to dial the gateway and introduce itself.
public struct AgentConfiguration: Sendable {
    /// The gateway's tunnel address.
    public var gatewayHost: String
    public var gatewayPort: Int
    /// The vehicle id the credential was minted for.
    public var vehicleID: String
    /// The credential (`fleetgate token issue`). Secret: never logged.
    public var credential: String
    /// The region the car says it is in (the gateway checks it against the credential).
    public var region: String
    public var hardware: HardwareClass
    public var policy: OwnerPolicy
    /// First reconnect delay; doubles per failed attempt up to ``maxBackoff``, with jitter.
    public var initialBackoff: TimeAmount
    public var maxBackoff: TimeAmount
    /// Seconds announced in the drain notice on shutdown.
    public var drainSeconds: Int
    /// HTTP/2 settings of the tunnel (the agent is the server on it).
    public var http2: HTTP2Configuration

    /// The tunnel's HTTP/2 defaults: a client port's, except (helper-61):
    /// - no rapid-reset limit: the gateway resets a car's stream whenever its client cancels, and one
    ///   tunnel carries the cancels of every client connection the gateway serves (each limited to
    ///   200 a second there). At the client port's limit a burst of cancels closed the tunnel with
    ///   ENHANCE_YOUR_CALM and failed the car's other streams over. The peer is the authenticated
    ///   gateway, whose resets each end a job it started within the car's slots;
    /// - a stall timeout twice the gateway's for its clients (120 s against 60): the gateway withholds
    ///   a stream's window while its client does not read, so a stream stalled here is a client's,
    ///   and the gateway must be the one to end it (the client's 499). At equal timeouts the car
    ///   often reset first, which the gateway took for the car's failure and moved the stream of a
    ///   client that was not reading to another car.
    public static var tunnelHTTP2Defaults: HTTP2Configuration {
        var configuration = HTTP2Configuration.defaults
        configuration.maxResetsPerSecond = 1_000_000
        configuration.stallTimeout = .seconds(120)
        return configuration
    }
    /// The tunnel's HTTP/2 settings as the tunnel runs them: ``http2`` with its graceful-shutdown
    /// timeout set to ``drainSeconds``, the time the drain notice promises the gateway (helper-130: the
    /// HTTP/2 default, 30 s, cut streams the gateway had been told would finish within 60, and held an
    /// announced 20 s drain for 30).
    public var tunnelHTTP2: HTTP2Configuration {
        var configuration = self.http2
        configuration.gracefulShutdownTimeout = .seconds(Int64(max(0, self.drainSeconds)))
        return configuration
    }
    /// TLS towards the gateway (production); nil dials cleartext (loopback development only).
    public var tls: TunnelTLS?
    /// Installs handlers nearest the socket on every tunnel, below TLS (the load harness emulates
    /// a car's link with it); nil: none.
    public var socketHandlers: (@Sendable (any Channel) throws -> Void)?

    /// How the agent verifies the gateway.
    public struct TunnelTLS: Sendable, Hashable {
        /// PEM file of the CA that signed the gateway's certificate; nil trusts the system's roots.
        public var caFile: String?
        /// The name to verify and send as SNI; nil uses the gateway host when it is a name.
        public var serverHostname: String?
        /// Issue #20: the car's vehicle certificate (PEM) and its key, for mTLS; nil: no client
        /// certificate (token authentication, development). Re-read when they change: a renewed
        /// certificate is used from the next tunnel, and the agent moves to a new tunnel for it.
        public var certificateFile: String?
        public var privateKeyFile: String?
        /// How often the files are checked for a renewal while a tunnel is up (not a key: 5 s; tests shorten it).
        public var pollInterval: TimeAmount = .seconds(5)
        public init(
            caFile: String? = nil, serverHostname: String? = nil, certificateFile: String? = nil,
            privateKeyFile: String? = nil
        ) {
            self.caFile = caFile
            self.serverHostname = serverHostname
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
        }

        /// The files whose change means a new TLS context: CA, certificate, key.
        var files: [String] { [self.caFile, self.certificateFile, self.privateKeyFile].compactMap { $0 } }
    }

    public init(
        gatewayHost: String, gatewayPort: Int, vehicleID: String, credential: String, region: String,
        hardware: HardwareClass, policy: OwnerPolicy = OwnerPolicy(),
        initialBackoff: TimeAmount = .milliseconds(200), maxBackoff: TimeAmount = .seconds(30),
        drainSeconds: Int = 30, http2: HTTP2Configuration = Self.tunnelHTTP2Defaults, tls: TunnelTLS? = nil
    ) {
        self.gatewayHost = gatewayHost
        self.gatewayPort = gatewayPort
        self.vehicleID = vehicleID
        self.credential = credential
        self.region = region
        self.hardware = hardware
        self.policy = policy
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.drainSeconds = drainSeconds
        self.http2 = http2
        self.tls = tls
    }
}

/// Jittered exponential backoff ("full jitter" over the upper half): attempt n waits a uniform
/// time in [d/2, d] where d = min(max, initial × 2ⁿ).
public struct Backoff: Sendable {
    public var initial: TimeAmount
    public var maximum: TimeAmount

    public init(initial: TimeAmount, maximum: TimeAmount) {
        self.initial = initial
        self.maximum = maximum
    }

    /// The delay before attempt `attempt` (0-based), given a random fraction in [0, 1).
    public func delay(attempt: Int, random: Double) -> TimeAmount {
        let capped = min(Double(self.maximum.nanoseconds), Double(self.initial.nanoseconds) * pow2(min(attempt, 30)))
        return .nanoseconds(Int64(capped * (0.5 + 0.5 * random)))
    }
}

private func pow2(_ n: Int) -> Double { Double(1 << n) }
