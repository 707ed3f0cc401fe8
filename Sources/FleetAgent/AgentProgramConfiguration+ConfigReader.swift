public import Configuration
public import FleetConfiguration
public import FleetHTTP2
import FleetProtocol
import Foundation
import Logging
import NIOCore

extension AgentProgramConfiguration {
    /// Reads the agent's configuration.
    ///
    /// ## Configuration keys:
    /// - `gateway.address` (string, default 127.0.0.1:7443), `gateway.tls` (bool, default false),
    ///   `gateway.certificateFile`, `gateway.privateKeyFile` (string, default empty = no client certificate),
    ///   `gateway.caFile` (string, default empty = system roots), `gateway.serverName` (string, default
    ///   empty = the name each address was resolved from, or the host).
    /// - `gateway.addresses` (string list of host:port, default empty): further replicas (issue #21);
    ///   a host name is resolved again before each dial, each of its A/AAAA records a replica once a
    ///   gateway has sent `replicas` (until then a name is one entry: its records may be one gateway's).
    /// - `gateway.tunnels` (int, default 2, 1…4): tunnels kept at once, each to a distinct replica
    ///   (at most one per configured entry until a gateway has sent `replicas`).
    /// - `vehicle.id`, `vehicle.region` (string, required by `run`).
    /// - `token` (string, secret, environment `FLEET_AGENT_TOKEN` only) or `tokenFile` (string): required by `run`.
    /// - `engine.kind` (synthetic | openai-local), `engine.hardware` (hw3 | hw4 | ai5), `engine.upstream`,
    ///   `engine.modelMap` (ADVERTISED=UPSTREAM list), `engine.slowdown` (≥ 1), `engine.slots` (0 = profile),
    ///   `engine.cacheSequences` (-1 = not known), `engine.cacheTokens` (0 = not said), `engine.contextTokens`
    ///   (0 = the profile's, or the runtime's),
    ///   `engine.decodeTokensPerSecond`, `engine.prefillTokensPerSecond` (0 = profile).
    /// - `state.pluggedIn`, `state.chargePercent` (0–100), `state.link`, `state.departingInSeconds` (-1 = not
    ///   departing), `state.file`.
    /// - `policy.onlyWhilePlugged`, `policy.minChargePercent` (0–100).
    /// - `reconnect.initialBackoffSeconds`, `reconnect.maxBackoffSeconds`, `drainSeconds`.
    /// - `listen` (string host:port, default empty).
    /// - `jobLog` (string, default empty = none): the job record file.
    /// - `tunnelHTTP2` (scoped): ``HTTP2Configuration/init(config:)``.
    /// - `logging.level` (string, default info; a typo is an error).
    /// - Throws: ``ConfigurationError`` naming the key and value.
    public init(config: ConfigReader) throws {
        self.init()
        (self.gateway.host, self.gateway.port) = try Self.hostPort(config, "gateway.address", allowZero: false)
        let caFile = try config.nonEmptyString("gateway.caFile")
        let serverName = try config.nonEmptyString("gateway.serverName")
        let certificate = try config.nonEmptyString("gateway.certificateFile")
        let key = try config.nonEmptyString("gateway.privateKeyFile")
        if (certificate == nil) != (key == nil) {
            throw ConfigurationError(
                .missingValue, key: certificate == nil ? "gateway.certificateFile" : "gateway.privateKeyFile",
                "the vehicle certificate and its key go together")
        }
        // There at least, so that `config check` catches a wrong path that `run` would stop on (helper-73).
        for case (let name, let path?) in [
            ("gateway.caFile", caFile), ("gateway.certificateFile", certificate), ("gateway.privateKeyFile", key),
        ] where !FileManager.default.isReadableFile(atPath: path) {
            throw ConfigurationError(.unreadableFile, key: name, value: path, "cannot read the file")
        }
        if try config.bool("gateway.tls") {
            self.gateway.tls = .init(
                caFile: caFile, serverHostname: serverName, certificateFile: certificate, privateKeyFile: key)
        } else if let unused = caFile ?? serverName ?? certificate {
            let name =
                caFile != nil ? "gateway.caFile" : serverName != nil ? "gateway.serverName" : "gateway.certificateFile"
            throw ConfigurationError(.invalidValue, key: name, value: unused, "is only used with gateway.tls: true")
        }
        self.gateway.others = try config.strings("gateway.addresses").map { text in
            guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
                let port = Int(text[text.index(after: colon)...]), 1...65535 ~= port
            else { throw ConfigurationError(.invalidValue, key: "gateway.addresses", value: text, "is not host:port") }
            return Gateway.HostPort(host: String(text[..<colon]), port: port)
        }
        self.gateway.tunnels = try config.int("gateway.tunnels", in: 1...4)
        self.vehicle.id = try config.nonEmptyString("vehicle.id")
        self.vehicle.region = try config.nonEmptyString("vehicle.region")
        self.vehicle.token = try config.secret("token", orFile: "tokenFile")

        self.engine.kind = try config.choice("engine.kind", of: ["synthetic", "openai-local"])
        self.engine.hardware = HardwareClass(
            rawValue: try config.choice("engine.hardware", of: HardwareClass.allCases.map(\.rawValue)))!
        self.engine.upstream = try config.string("engine.upstream")
        // A configuration error, not a runtime still loading: refused here rather than retried for ever
        // (helper-130: `https://…` was "Runtime not answering yet; retrying" every 30 s).
        if self.engine.kind == "openai-local", !self.engine.upstream.hasPrefix("http://") {
            throw ConfigurationError(
                .invalidValue, key: "engine.upstream", value: String(self.engine.upstream.prefix(80)),
                "must be http://host[:port][/path]: the runtime is a local server, reached in cleartext")
        }
        for entry in try config.strings("engine.modelMap") {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ConfigurationError(
                    .invalidValue, key: "engine.modelMap", value: entry, "is not ADVERTISED=UPSTREAM")
            }
            self.engine.modelMap[parts[0]] = parts[1]
        }
        self.engine.slowdown = try config.double("engine.slowdown", in: 1...1_000)
        self.engine.chatTemplate = try config.string("engine.chatTemplate")
        guard ["auto", "smollm2", "chatml", "none"].contains(self.engine.chatTemplate) else {
            throw ConfigurationError(
                .invalidValue, key: "engine.chatTemplate", value: self.engine.chatTemplate,
                "must be one of auto, smollm2, chatml, none")
        }
        self.engine.cheatEvery = try config.int("engine.cheatEvery", in: 0...1_000_000)
        let slots = try config.int("engine.slots", in: 0...4096)
        self.engine.slots = slots == 0 ? nil : slots
        let sequences = try config.int("engine.cacheSequences", in: -1...1_000_000)
        self.engine.cacheSequences = sequences < 0 ? nil : sequences
        let cacheTokens = try config.int("engine.cacheTokens", in: 0...100_000_000)
        self.engine.cacheTokens = cacheTokens == 0 ? nil : cacheTokens
        let window = try config.int("engine.contextTokens", in: 0...FleetStatus.maxContextTokens)
        self.engine.contextTokens = window == 0 ? nil : window
        let decode = try config.double("engine.decodeTokensPerSecond", in: 0...1_000_000)
        self.engine.decodeTokensPerSecond = decode == 0 ? nil : decode
        let prefill = try config.double("engine.prefillTokensPerSecond", in: 0...10_000_000)
        self.engine.prefillTokensPerSecond = prefill == 0 ? nil : prefill

        let departing = try config.int("state.departingInSeconds", in: -1...FleetStatus.maxDepartingSeconds)
        self.state = VehicleState(
            pluggedIn: try config.bool("state.pluggedIn"),
            chargePercent: try config.int("state.chargePercent", in: 0...100),
            link: LinkType(rawValue: try config.choice("state.link", of: LinkType.allCases.map(\.rawValue)))!,
            departingInSeconds: departing < 0 ? nil : departing, slotsFree: 0)
        self.stateFile = try config.nonEmptyString("state.file")
        self.policy = OwnerPolicy(
            onlyWhilePlugged: try config.bool("policy.onlyWhilePlugged"),
            minChargePercent: try config.int("policy.minChargePercent", in: 0...100))
        self.initialBackoff = try config.seconds("reconnect.initialBackoffSeconds")
        self.maxBackoff = try config.seconds("reconnect.maxBackoffSeconds")
        self.drainSeconds = try config.int("drainSeconds", in: 0...3600)
        if try config.nonEmptyString("listen") != nil {
            let (host, port) = try Self.hostPort(config, "listen", allowZero: true)
            self.listen = "\(host):\(port)"
        }
        self.jobLog = try config.nonEmptyString("jobLog")
        self.tunnelHTTP2 = try config.scoped("tunnelHTTP2") { try HTTP2Configuration(config: $0) }
        self.logLevel = try config.logLevel("logging.level").rawValue
    }

    /// The configuration `fleet-agent run` starts with: read, and its job log one it can append to.
    ///
    /// `run` opens the job log at start, which reading does not (helper-137: a `jobLog` in a directory that
    /// is not there passed `config check` and stopped `run`). `fleet-agent config check` uses it, as
    /// `fleetgate config check` uses `GatewayConfiguration.checked(config:)`; run it as the agent's user.
    public static func checked(config: ConfigReader) throws -> AgentProgramConfiguration {
        let configuration = try AgentProgramConfiguration(config: config)
        if let path = configuration.jobLog, let problem = Self.appendProblem(path) {
            throw ConfigurationError(.invalidValue, key: "jobLog", value: path, problem)
        }
        return configuration
    }

    /// Why this user cannot append to `path`, creating it if need be (``JobLog``'s open); nil when it can.
    static func appendProblem(_ path: String) -> String? {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        if files.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "is a directory, not a file" }
            return files.isWritableFile(atPath: path) ? nil : "cannot be written (the agent appends a line per job)"
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard files.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "its directory \(directory) does not exist (the agent creates the file, not the directory)"
        }
        return files.isWritableFile(atPath: directory)
            ? nil : "its directory \(directory) is not writable (the agent creates the file there)"
    }

    static func hostPort(_ config: ConfigReader, _ key: String, allowZero: Bool) throws -> (String, Int) {
        let text = try config.string(key)
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (allowZero ? 0 : 1)...65535 ~= port, colon != text.startIndex
        else {
            throw ConfigurationError(.invalidValue, key: key, value: text, "is not host:port")
        }
        return (String(text[..<colon]), port)
    }

    /// Every key the agent reads, in the order `docs/configuration.md` lists them.
    public static var schema: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            ConfigSchema([
                .string(
                    "gateway.address", "\(d.gateway.host):\(d.gateway.port)",
                    "The gateway's tunnel address, host:port.", aliases: ["--gateway"]),
                .bool("gateway.tls", false, "Dial the gateway over TLS (production).", aliases: ["--tls"]),
                .string(
                    "gateway.caFile", "", "PEM CA to verify the gateway with (empty: system roots).",
                    aliases: ["--ca-file"]),
                .string(
                    "gateway.serverName", "",
                    "Name to verify on the gateway's certificate (empty: the host name each address was resolved from, or the host).",
                    aliases: ["--server-name"]),
                .strings(
                    "gateway.addresses", [],
                    "Further gateway replicas' tunnel addresses (host:port); a host name is re-resolved before each dial, every record a replica once a gateway has said it is one of a cluster.",
                    aliases: ["--also-gateway"]),
                .int(
                    "gateway.tunnels", d.gateway.tunnels,
                    "Tunnels kept at once, each to a distinct replica (at most one per configured address until a gateway has said it is one of a cluster); a lost one re-dials another replica."
                ),
                .string(
                    "gateway.certificateFile", "",
                    "This car's vehicle certificate, PEM (fleetgate pki issue); mTLS instead of a token. Re-read when it changes.",
                    aliases: ["--cert"]),
                .string(
                    "gateway.privateKeyFile", "", "The vehicle certificate's private key, PEM.", aliases: ["--key"]),
                .string("vehicle.id", "", "This car's vehicle id (required by run).", aliases: ["--vehicle-id"]),
                .string("vehicle.region", "", "The region the car is in (required by run).", aliases: ["--region"]),
                .secret("token", "The car's token (fleetgate token issue). Environment only.", aliases: ["--token"]),
                .string(
                    "tokenFile", "", "File holding the car's token (instead of FLEET_AGENT_TOKEN).",
                    aliases: ["--token-file"]),
                .string(
                    "engine.kind", d.engine.kind,
                    "Engine: synthetic, or openai-local (a local OpenAI-compatible runtime at engine.upstream).",
                    aliases: ["--engine"]),
                .string(
                    "engine.hardware", d.engine.hardware.rawValue, "Hardware class: hw3, hw4 or ai5.",
                    aliases: ["--hardware"]),
                .string(
                    "engine.upstream", d.engine.upstream,
                    "openai-local: the runtime's base URL, ending in /v1: plain http:// (a name is tried at each of its addresses).",
                    aliases: ["--upstream"]),
                .strings(
                    "engine.modelMap", [],
                    "openai-local: ADVERTISED=UPSTREAM model names (default: the runtime's own).",
                    aliases: ["--model-map"]),
                .double(
                    "engine.slowdown", d.engine.slowdown, "Hidden slowdown of the synthetic engine (1 = nominal).",
                    aliases: ["--slowdown"]),
                .string(
                    "engine.chatTemplate", d.engine.chatTemplate,
                    "openai-local: the model's chat template, to continue another car's answer: auto (SmolLM2's when every runtime model is a SmolLM, else none), smollm2, chatml or none (never given a continuation).",
                    aliases: ["--chat-template"]),
                .int(
                    "engine.cheatEvery", 0,
                    "TESTING ONLY: return wrong text on every Nth job (1: always; 0: honest) to exercise audits.",
                    aliases: ["--cheat-every"]),
                .int(
                    "engine.slots", 0,
                    "Slots (0: the hardware profile's; openai-local: 1). A gateway sends a car at most 64 jobs at once.",
                    aliases: ["--slots"]),
                .int(
                    "engine.cacheSequences", -1,
                    "openai-local: prompt sequences the runtime's cache keeps, told in the hello (-1: not known; 0: none).",
                    aliases: ["--cache-sequences"]),
                .int(
                    "engine.cacheTokens", 0, "openai-local: the runtime's context tokens, told with it (0: not said).",
                    aliases: ["--cache-tokens"]),
                .int(
                    "engine.contextTokens", 0,
                    "The model's context window in tokens, told in the hello so the gateway sends longer requests elsewhere (0: the profile's for synthetic; openai-local: engine.cacheTokens, else the runtime's max_model_len, else not said).",
                    aliases: ["--context-tokens"]),
                .double(
                    "engine.decodeTokensPerSecond", 0, "Decode tokens/s per stream (0: the profile's).",
                    aliases: ["--decode-tps"]),
                .double(
                    "engine.prefillTokensPerSecond", 0, "Prefill tokens/s (0: the profile's).",
                    aliases: ["--prefill-tps"]),
                .bool(
                    "state.pluggedIn", d.state.pluggedIn, "Plugged in at start.",
                    aliases: ["--plugged", "--no-plugged=false"]),
                .int(
                    "state.chargePercent", d.state.chargePercent, "State of charge at start, 0–100.",
                    aliases: ["--charge"]),
                .string(
                    "state.link", d.state.link.rawValue, "Link: wifi, cellular, satellite, ethernet.",
                    aliases: ["--link"]),
                .int(
                    "state.departingInSeconds", -1, "Seconds until the car drives off (-1: not departing).",
                    aliases: ["--departing-in"]),
                .string(
                    "state.file", "",
                    "JSON file with plugged_in, charge_percent, link, departing_in_s; watched for changes.",
                    aliases: ["--state-file"]),
                .bool(
                    "policy.onlyWhilePlugged", d.policy.onlyWhilePlugged, "Serve only while plugged in (owner policy).",
                    aliases: ["--only-while-plugged"]),
                .int(
                    "policy.minChargePercent", d.policy.minChargePercent,
                    "Lowest state of charge to serve at (owner policy).", aliases: ["--min-charge"]),
                .double(
                    "reconnect.initialBackoffSeconds", Double(d.initialBackoff.nanoseconds) / 1e9,
                    "First reconnect delay; doubles per failure, with jitter."),
                .double(
                    "reconnect.maxBackoffSeconds", Double(d.maxBackoff.nanoseconds) / 1e9, "Longest reconnect delay."),
                .int(
                    "drainSeconds", d.drainSeconds,
                    "Seconds a draining car keeps its tunnels up for its jobs to finish, as its drain notice tells the gateway."
                ),
                .string(
                    "listen", "",
                    "run: also serve the engine on host:port as an OpenAI-compatible server; serve: where to listen (empty: 127.0.0.1:8000).",
                    aliases: ["--listen"]),
                .string(
                    "jobLog", "",
                    "Append one JSON line per job (request id, zone, region, resume-from, tokens, outcome) to this file.",
                    aliases: ["--job-log"]),
            ]),
            ConfigSchema(scope: "tunnelHTTP2", Self.tunnelHTTP2Keys(defaults: d.tunnelHTTP2)),
            ConfigSchema([
                .string(
                    "logging.level", d.logLevel, "Log level: trace, debug, info, notice, warning, error, critical.",
                    aliases: ["--log-level"])
            ]),
        ])
    }

    /// The tunnel's HTTP/2 keys, saying what the graceful-shutdown timeout is on a tunnel: the drain's own
    /// time (``AgentConfiguration/tunnelHTTP2``).
    static func tunnelHTTP2Keys(defaults: HTTP2Configuration) -> ConfigSchema {
        var schema = HTTP2Configuration.configKeys(defaults: defaults)
        for index in schema.keys.indices where schema.keys[index].key == "gracefulShutdownTimeoutSeconds" {
            schema.keys[index].summary =
                "Not used on the tunnel: after its GOAWAY a draining car keeps it up for drainSeconds, the time its drain notice announced."
        }
        return schema
    }
}
