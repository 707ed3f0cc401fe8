import ArgumentParser
import FleetAgent
import FleetGate
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

@main
struct FleetGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetgate",
        abstract: "An HTTP/2 gateway that routes OpenAI-style inference to a fleet of parked cars.",
        subcommands: [Serve.self, Demo.self, Token.self, Geo.self, Regions.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Log level (trace, debug, info, notice, warning, error).") var logLevel: String = "info"
    @Option(help: "Event loop threads (default: one per core).") var threads: Int?

    func bootstrap() -> Logger {
        let level = Logger.Level(rawValue: self.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "fleetgate")
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway.")
    @OptionGroup var common: CommonOptions
    @Option(help: "Address for the client and tunnel listeners.") var host = "127.0.0.1"
    @Option(help: "Client port (h2c + HTTP/1.1); 0 picks one.") var clientPort = 8080
    @Option(help: "Car tunnel port.") var tunnelPort = 7443
    @Option(help: "Admin port (bound to 127.0.0.1).") var adminPort = 9090
    @Option(help: "An accepted API key (repeatable). None: no authentication.") var apiKey: [String] = []
    @Option(help: "Trusted proxy CIDR whose X-Forwarded-For is believed (repeatable).") var trustedProxy: [String] = []
    @Flag(help: "Accept cleartext tunnels from non-loopback peers.") var allowCleartextTunnels = false
    @Option(
        help:
            "Load balancer CIDR whose client-port connections start with a PROXY protocol v2 header (repeatable; default: none)."
    )
    var proxyProtocolFrom: [String] = []
    @Option(help: "The same for the TLS client port (repeatable; default: none).") var tlsProxyProtocolFrom: [String] =
        []
    @Option(help: "Address for a read-only /healthz, /readyz, /metrics listener (e.g. the pod IP; default: none).")
    var probesHost: String?
    @Option(help: "Port of the probes listener.") var probesPort = 9091
    @Option(help: "Application key file (YAML: sha256 of each key and its quotas; reloaded on SIGHUP).")
    var apiKeysFile: String?
    @Option(help: "File holding the admin bearer token (default: none, the admin API is open on loopback).")
    var adminTokenFile: String?
    @Option(help: "A Host name the admin API answers besides loopback (repeatable; DNS-rebinding guard).")
    var adminAllowedHost: [String] = []
    @Option(help: "Seconds a client has to finish the TLS handshake, PROXY header or protocol preface (default 10).")
    var handshakeTimeout: Int64 = 10
    @Option(help: "Seconds an HTTP/1.1 client has to send a complete request head (default 10).")
    var headerTimeout: Int64 = 10
    @Option(help: "Seconds an idle HTTP/1.1 keep-alive connection stays open (default 30).")
    var keepAliveTimeout: Int64 = 30
    @Option(help: "PEM certificate chain for the TLS client port.") var tlsCert: String?
    @Option(help: "PEM private key for the TLS client port.") var tlsKey: String?
    @Option(help: "TLS client port (ALPN h2, http/1.1).") var tlsPort = 8443
    @Option(help: "PEM certificate chain for car tunnels (all tunnels TLS).") var tunnelTlsCert: String?
    @Option(help: "PEM private key for car tunnels.") var tunnelTlsKey: String?
    @Option(help: "Region map YAML (default: the built-in map, the same as Regions/default.yaml).") var regions: String?
    @Option(help: "MaxMind DB for client origins (default: the one scripts/setup.sh builds, if present).") var geoip:
        String?
    @Option(help: "Central capacity REGION=BASE_URL (…/v1), repeatable; used when no car in the zone fits.")
    var central: [String] = []
    @Option(
        help:
            "How cars are chosen: predictive (default), random, round-robin, least-outstanding, p2c-least-outstanding, p2c-peak-ewma."
    )
    var policy = "predictive"
    @Option(help: "Time-to-first-token objective (ms) for requests without x-slo-ttft-ms.") var sloTtftMs = 1_000.0

    func run() async throws {
        let logger = self.common.bootstrap()
        guard let secret = ProcessInfo.processInfo.environment["FLEETGATE_FLEET_SECRET"] else {
            throw ValidationError("set FLEETGATE_FLEET_SECRET (at least 16 bytes) to the fleet secret")
        }
        let config = GatewayConfiguration(
            host: self.host, clientPort: self.clientPort, tunnelPort: self.tunnelPort, adminPort: self.adminPort,
            apiKeys: Set(self.apiKey), fleetSecret: secret, trustedProxies: self.trustedProxy,
            allowCleartextTunnels: self.allowCleartextTunnels,
            tls: try self.tlsFiles(), tlsPort: self.tlsPort, central: try self.centralEndpoints(),
            tunnelTLS: try Self.pair(self.tunnelTlsCert, self.tunnelTlsKey, "--tunnel-tls-cert and --tunnel-tls-key"))
        var configured = config
        configured.geoipDatabase = self.geoip ?? defaultGeoIPDatabase()
        configured.adminTokenFile = self.adminTokenFile
        configured.probesHost = self.probesHost
        configured.probesPort = self.probesPort
        configured.apiKeysFile = self.apiKeysFile
        configured.adminAllowedHosts = self.adminAllowedHost
        configured.clientHTTP2.handshakeTimeout = .seconds(self.handshakeTimeout)
        configured.clientHTTP2.http1HeaderTimeout = .seconds(self.headerTimeout)
        configured.clientHTTP2.http1KeepAliveTimeout = .seconds(self.keepAliveTimeout)
        configured.proxyProtocolFrom = self.proxyProtocolFrom
        configured.tlsProxyProtocolFrom = self.tlsProxyProtocolFrom
        guard let policy = SchedulingPolicy(rawValue: self.policy) else {
            throw ValidationError(
                "--policy: '\(self.policy)' is not one of \(SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", "))"
            )
        }
        guard self.sloTtftMs >= 1 else { throw ValidationError("--slo-ttft-ms: \(self.sloTtftMs) must be ≥ 1") }
        configured.schedulingPolicy = policy
        configured.defaultTTFTObjectiveMilliseconds = self.sloTtftMs
        if let regions = self.regions {
            configured.regionMap = try RegionMap.load(path: regions)
            configured.regionsFile = regions
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: self.common.threads ?? System.coreCount)
        let gateway = try Gateway(configuration: configured, group: group, logger: logger)
        let services = ServiceGroup(
            configuration: .init(
                services: gateway.services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await services.run()
    }
}

extension Serve {
    func centralEndpoints() throws -> [GatewayConfiguration.CentralEndpoint] {
        try self.central.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw ValidationError("--central: '\(entry)' is not REGION=BASE_URL") }
            return .init(region: String(parts[0]), baseURL: String(parts[1]))
        }
    }

    func tlsFiles() throws -> GatewayConfiguration.TLSFiles? {
        try Self.pair(self.tlsCert, self.tlsKey, "--tls-cert and --tls-key")
    }

    static func pair(_ cert: String?, _ key: String?, _ flags: String) throws -> GatewayConfiguration.TLSFiles? {
        switch (cert, key) {
        case (nil, nil): return nil
        case (let cert?, let key?): return .init(certificateChain: cert, privateKey: key)
        default: throw ValidationError("\(flags) go together")
        }
    }
}

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Vehicle credentials.", subcommands: [Issue.self])

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Mint a vehicle token (uses FLEETGATE_FLEET_SECRET).")
        @Option(help: "The vehicle id.") var vehicleID: String
        @Option(help: "A region the car may serve (repeatable).") var region: [String]
        @Option(help: "Validity in days.") var days = 30

        func run() async throws {
            guard let secret = ProcessInfo.processInfo.environment["FLEETGATE_FLEET_SECRET"] else {
                throw ValidationError("set FLEETGATE_FLEET_SECRET to the fleet secret")
            }
            let credentials = try FleetCredentials(secret: secret)
            print(
                credentials.issue(
                    vehicleID: self.vehicleID, regions: self.region,
                    expires: Date().addingTimeInterval(Double(self.days) * 86_400)))
        }
    }
}

/// The database `scripts/setup.sh` builds, when it exists.
func defaultGeoIPDatabase() -> String? {
    let cache =
        ProcessInfo.processInfo.environment["FLEETGATE_CACHE"]
        ?? (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.cache/fleetgate"
    let path = cache + "/geoip/fleet-country.mmdb"
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

struct Geo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GeoIP tools.", subcommands: [Lookup.self])

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print country → region → zone for addresses.")
        @Argument(help: "IPv4 or IPv6 addresses.") var addresses: [String]
        @Option(help: "MaxMind DB (default: the one scripts/setup.sh builds).") var geoip: String?

        func run() async throws {
            let path = self.geoip ?? defaultGeoIPDatabase()
            let database = try path.map { try MaxMindDatabase(path: $0) }
            let map = RegionMap.default
            let resolver = OriginResolver(map: map, lookup: database)
            if let database {
                print(
                    "database: \(database.path) (\(database.databaseType), built \(Date(timeIntervalSince1970: TimeInterval(database.buildEpoch))))"
                )
            } else {
                print("database: none (every public address follows the noDatabase rule)")
            }
            print("region map: \(map.version)")
            for text in self.addresses {
                guard let address = IPAddress(text) else { throw ValidationError("'\(text)' is not an IP address") }
                let origin = resolver.resolve(address)
                print(
                    "\(text) → country \(origin.country ?? "-") → region \(origin.region) → zone \(origin.zone) (rule: \(origin.rule.rawValue))"
                )
            }
        }
    }
}

struct Regions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Region map tools.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate region map files; print every error as file:line:column and exit non-zero if any.")
        @Argument(help: "YAML files.") var files: [String]

        func run() async throws {
            var failed = false
            for file in self.files {
                do {
                    let map = try RegionMap.load(path: file)
                    print(
                        "\(file): ok (version \(map.version), \(map.zones.count) zones, \(map.regions.count) regions)")
                } catch {
                    failed = true
                    FileHandle.standardError.write(Data((error.description + "\n").utf8))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
