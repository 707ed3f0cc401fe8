public import Configuration
public import FleetConfiguration
import FleetGeo
public import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import Logging
import NIOCore

// The configuration scopes of what the gateway talks to and trusts: geo (where requests come
// from), tunnel (cars), audit and central (trusted capacity), auth (apps), logging.

extension GatewayConfiguration.Geo {
    /// ## Configuration keys:
    /// - `regionsFile` (string, default empty = the built-in map): region map YAML, checked with file:line:column. Reloadable.
    /// - `databaseFile` (string, default empty = the database scripts/setup.sh builds, when present; `none` = no database). Reloadable.
    /// - `trustedProxies` (string list, default empty): CIDR blocks whose X-Forwarded-For is believed. Reloadable.
    public init(config: ConfigReader) throws {
        self.init()
        if let file = try config.nonEmptyString("regionsFile") {
            do { self.regionMap = try RegionMap.load(path: file) } catch {
                // The map's own errors follow, each with its file:line (helper-101: the line ended at the colon).
                throw ConfigurationError(
                    .invalidValue, key: "regionsFile", value: file, "the region map has errors:\n\(error.description)",
                    cause: error)
            }
            self.regionsFile = file
        }
        switch try config.string("databaseFile") {
        case "": self.databaseFile = Self.setupDatabase
        case "none": self.databaseFile = nil
        case let path: self.databaseFile = path
        }
        self.trustedProxies = try config.strings("trustedProxies")
    }

    /// The database `scripts/setup.sh` builds, when it exists.
    public static var setupDatabase: String? {
        let environment = ProcessInfo.processInfo.environment
        let cache = environment["FLEETGATE_CACHE"] ?? (environment["HOME"] ?? "/root") + "/.cache/fleetgate"
        let path = cache + "/geoip/fleet-country.mmdb"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    static var configKeys: ConfigSchema {
        ConfigSchema([
            .string(
                "regionsFile", "", "Region map YAML (empty: the built-in map, as Regions/default.yaml). Reloadable.",
                aliases: ["--regions"]),
            .string(
                "databaseFile", "",
                "MaxMind DB for client origins (empty: the one scripts/setup.sh builds, if present; none: no database). Reloadable.",
                aliases: ["--geoip"]),
            .strings(
                "trustedProxies", [], "CIDR blocks whose X-Forwarded-For is believed. Reloadable.",
                aliases: ["--trusted-proxy"]),
        ])
    }
}

extension GatewayConfiguration.Tunnel {
    /// ## Configuration keys:
    /// - `helloTimeoutSeconds` (double, default 5): time for a car's hello. Reloadable.
    /// - `pingIntervalSeconds` (double, default 5): PING interval per car. Reloadable (new tunnels).
    public init(config: ConfigReader) throws {
        self.init()
        self.helloTimeout = try config.seconds("helloTimeoutSeconds")
        self.pingInterval = try config.seconds("pingIntervalSeconds", minimum: 0.01)
        self.busyPingInterval = try config.seconds("busyPingIntervalSeconds", minimum: 0.01)
        self.auth = GatewayConfiguration.TunnelAuth(
            rawValue: try config.choice("auth", of: GatewayConfiguration.TunnelAuth.allCases.map(\.rawValue)))!
        self.caFile = try config.nonEmptyString("caFile")
        self.revocationFile = try config.nonEmptyString("revocationFile")
        self.trustPollInterval = try config.seconds("trustPollSeconds", minimum: 0.1)
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            .double(
                "helloTimeoutSeconds", Double(d.helloTimeout.nanoseconds) / 1e9,
                "How long a car has to send its hello after connecting. Reloadable."),
            .double(
                "pingIntervalSeconds", Double(d.pingInterval.nanoseconds) / 1e9,
                "How often each car is PINGed for RTT and liveness. Reloadable (new tunnels)."),
            .double(
                "busyPingIntervalSeconds", Double(d.busyPingInterval.nanoseconds) / 1e9,
                "How often a car running jobs is PINGed; two missed PINGs mean it is dead. Reloadable (new tunnels)."),
            .string(
                "auth", d.auth.rawValue,
                "How cars authenticate: certificate (mTLS, vehicle certificates) or token (HMAC; development only). Restart.",
                aliases: ["--tunnel-auth"]),
            .string(
                "caFile", "", "PEM fleet CA(s) whose vehicle certificates are accepted. Reloadable (polled).",
                aliases: ["--tunnel-ca"]),
            .string(
                "revocationFile", "",
                "Revoked serials and vehicle ids (docs/security.md); the file is re-read when it changes (polled) and revoked cars are closed. Its path: Restart.",
                aliases: ["--revocation-file"]),
            .double(
                "trustPollSeconds", Double(d.trustPollInterval.nanoseconds) / 1e9,
                "How often the CA, revocation, TLS certificate and key, and API key files are checked for changes. Restart."
            ),
        ])
    }
}

extension GatewayConfiguration.Audit {
    /// ## Configuration keys:
    /// - `endpoints` (string list of `REGION=BASE_URL`, default empty = no audits): trusted scoring runtimes. Restart.
    /// - `fraction` (double 0–1, default 0.05), `zoneFractions` (string list `ZONE=SHARE`). Reloadable.
    /// - `minMeanLogprob` (double, default -4.5), `minTokens` (int, default 4). Reloadable.
    /// - `queueCapacity` (int, default 64), `concurrency` (int, default 1). Restart.
    /// - `quarantineBelow` (double 0–1, default 0.95). Reloadable.
    /// - `chatTemplate` (smollm2 | chatml, default smollm2). Reloadable.
    /// - `quarantineFile` (string, default empty = in memory only): quarantines kept across restarts. Restart.
    public init(config: ConfigReader) throws {
        self.init()
        self.endpoints = try config.strings("endpoints").map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else {
                throw ConfigurationError(
                    .invalidValue, key: "endpoints", value: CentralDirectory.redacted(entry), "is not REGION=BASE_URL")
            }
            return .init(region: String(parts[0]), baseURL: String(parts[1]))
        }
        self.fraction = try config.double("fraction", in: 0...1)
        for entry in try config.strings("zoneFractions") {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let share = Double(parts[1]), (0...1).contains(share) else {
                throw ConfigurationError(.invalidValue, key: "zoneFractions", value: entry, "is not ZONE=SHARE (0–1)")
            }
            self.zoneFractions[String(parts[0])] = share
        }
        self.minMeanLogprob = try config.double("minMeanLogprob", in: -100...0)
        self.minTokens = try config.int("minTokens", in: 1...100_000)
        self.queueCapacity = try config.int("queueCapacity", in: 1...100_000)
        self.concurrency = try config.int("concurrency", in: 1...1_024)
        self.quarantineBelow = try config.double("quarantineBelow", in: 0...1)
        self.chatTemplate = try config.choice("chatTemplate", of: ["smollm2", "chatml"])
        let quarantineFile = try config.string("quarantineFile")
        self.quarantineFile = quarantineFile.isEmpty ? nil : quarantineFile
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            .strings(
                "endpoints", [],
                "Trusted runtimes that score car results, REGION=BASE_URL (…/v1, echo+logprobs); empty: no audits. Restart.",
                aliases: ["--audit-endpoint"]),
            .double(
                "fraction", d.fraction, "Share of completed car requests audited per zone (0–1). Reloadable.",
                aliases: ["--audit-fraction"]),
            .strings("zoneFractions", [], "Per-zone audit shares, ZONE=SHARE. Reloadable."),
            .double(
                "minMeanLogprob", d.minMeanLogprob,
                "An audit fails below this mean log-likelihood per token of the car's text. Reloadable."),
            .int("minTokens", d.minTokens, "Audits with fewer scored tokens are not counted. Reloadable."),
            .int("queueCapacity", d.queueCapacity, "Completions waiting for an audit; more are dropped. Restart."),
            .int("concurrency", d.concurrency, "Audits scored at once. Restart."),
            .double(
                "quarantineBelow", d.quarantineBelow,
                "Quarantine a car whose reputation (share of passed audits, Beta posterior) falls below this. Reloadable."
            ),
            .string(
                "chatTemplate", d.chatTemplate,
                "Chat template the audit renders prompts with: smollm2 or chatml. Reloadable."),
            .string(
                "quarantineFile", "",
                "File the gateway keeps quarantined vehicles in (revocation file format), read at start and when it "
                    + "changes; a line deleted lifts that quarantine. Empty: in memory until restart. Restart."),
        ])
    }
}

extension GatewayConfiguration.Central {
    /// ## Configuration keys:
    /// - `endpoints` (string list of `REGION=BASE_URL`, default empty): central capacity. Restart.
    /// - `maxConcurrent` (int, default 256), `expectedTTFTMilliseconds` (double, default 300),
    ///   `expectedTPOTMilliseconds` (double, default 20): applied to every endpoint. Restart.
    /// - `prefixCache` (bool, default false): central runtimes cache prompt prefixes. Restart.
    /// - `caFile` (string, default empty): PEM CA(s) trusted for https endpoints besides the system's roots. Restart.
    public init(config: ConfigReader) throws {
        let maxConcurrent = try config.int("maxConcurrent", in: 1...1_000_000)
        let ttft = try config.double("expectedTTFTMilliseconds", in: 0...3_600_000)
        let tpot = try config.double("expectedTPOTMilliseconds", in: 0...3_600_000)
        let continuation = ContinuationMode(
            rawValue: try config.choice("continuation", of: ContinuationMode.allCases.map(\.rawValue)))!
        let prefixCache = try config.bool("prefixCache")
        self.init(
            endpoints: try config.strings("endpoints").map { entry in
                let parts = entry.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else {
                    throw ConfigurationError(
                        .invalidValue, key: "endpoints", value: CentralDirectory.redacted(entry),
                        "is not REGION=BASE_URL")
                }
                var endpoint = GatewayConfiguration.CentralEndpoint(
                    region: String(parts[0]), baseURL: String(parts[1]), maxConcurrent: maxConcurrent,
                    expectedTTFTMilliseconds: ttft, expectedTPOTMilliseconds: tpot,
                    continuation: continuation)
                endpoint.prefixCache = prefixCache
                return endpoint
            })
        self.caFile = try config.nonEmptyString("caFile")
    }

    static var configKeys: ConfigSchema {
        let d = GatewayConfiguration.CentralEndpoint(region: "", baseURL: "")
        return ConfigSchema([
            .strings(
                "endpoints", [], "Central capacity as REGION=BASE_URL (…/v1); used when no car in the zone fits.",
                aliases: ["--central"]),
            .int("maxConcurrent", d.maxConcurrent, "Streams each central endpoint takes at once."),
            .double(
                "expectedTTFTMilliseconds", d.expectedTTFTMilliseconds,
                "Time to first token the scheduler assumes of central, ms."),
            .double(
                "expectedTPOTMilliseconds", d.expectedTPOTMilliseconds,
                "Time per output token the scheduler assumes of central, ms."),
            .string(
                "continuation", d.continuation.rawValue,
                "What central endpoints can do when a stream moves to them mid-answer: exact, prefix or none."),
            .bool(
                "prefixCache", d.prefixCache,
                "Whether central endpoints' runtimes cache prompt prefixes (credited by prefix-cache affinity)."),
            .string(
                "caFile", "",
                "PEM CA(s) trusted for https central endpoints besides the system's roots. Restart."),
        ])
    }
}

extension GatewayConfiguration.Auth {
    /// ## Configuration keys:
    /// - `apiKeys` (string list, secret, environment `FLEETGATE_AUTH_API_KEYS` only, comma-separated).
    /// - `apiKeysFile` (string, default empty): a file with one key per line (`#` comments). Reloadable.
    /// Both merge; none at all means no authentication (development). A key file that is configured
    /// and holds no key refuses every request: emptying it revokes every key.
    /// - `appKeysFile` (string, default empty = none): the YAML key file with quotas. Reloadable.
    /// - `corsOrigins` (string list, default empty): web origins allowed to call the API from a browser. Reloadable.
    public init(config: ConfigReader) throws {
        self.init(
            apiKeys: Set(try config.secretList("apiKeys", orFile: "apiKeysFile")),
            appKeysFile: try config.nonEmptyString("appKeysFile"),
            apiKeysFile: try config.nonEmptyString("apiKeysFile"))
        self.corsOrigins = try config.strings("corsOrigins")
    }

    static var configKeys: ConfigSchema {
        ConfigSchema([
            .secret(
                "apiKeys", "Accepted API keys, comma-separated. Environment only. Reloadable.", aliases: ["--api-key"]),
            .string(
                "apiKeysFile", "", "File of accepted API keys, one per line (# comments). Reloadable.",
                aliases: ["--api-key-file"]),
            .string(
                "appKeysFile", "",
                "YAML file of application keys: sha256 of each key and its quotas (docs/operations.md). Reloadable.",
                aliases: ["--app-keys-file"]),
            .strings(
                "corsOrigins", [],
                "Web origins (https://app.example.com, or * for any) whose pages may call the API from a browser (CORS); empty: none. Reloadable."
            ),
        ])
    }
}

extension GatewayConfiguration.Logging {
    /// ## Configuration keys:
    /// - `level` (string, default info): trace, debug, info, notice, warning, error or critical; a typo is an error. Reloadable.
    public init(config: ConfigReader) throws {
        self.init()
        self.level = try config.logLevel("level").rawValue
    }

    static var configKeys: ConfigSchema {
        ConfigSchema([
            .string(
                "level", Self.defaults.level,
                "Log level: trace, debug, info, notice, warning, error, critical. Reloadable.", aliases: ["--log-level"]
            )
        ])
    }
}
