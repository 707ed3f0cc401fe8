import ArgumentParser
import FleetConfiguration
import FleetGate
import FleetGeo
import FleetProtocol
import Logging

@main
struct FleetGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleetgate",
        abstract: "An HTTP/2 gateway that routes OpenAI-style inference to a fleet of parked cars.",
        version: FleetVersion.current,
        subcommands: [Serve.self, Demo.self, ConfigCommand.self, Token.self, PKI.self, Geo.self, Regions.self]
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Configuration: flags > FLEETGATE_* environment > fleetgate.yaml (or --config FILE) > defaults. \
            Every key of docs/configuration.md is a flag (limits.maxBodyBytes: --limits-max-body-bytes 2048); \
            `fleetgate config keys` lists them. Secrets (FLEETGATE_FLEET_SECRET, FLEETGATE_AUTH_API_KEYS) come \
            from the environment or from files (fleetSecretFile, auth.apiKeysFile), never from flags. \
            SIGHUP or POST /admin/reload reloads; SIGTERM drains.
            """)
    @Argument(parsing: .allUnrecognized, help: "Configuration flags (see docs/configuration.md).")
    var settings: [String] = []

    func run() async throws {
        let stack = try ConfigStack.reportingAll(
            program: .fleetgate, schema: GatewayConfiguration.schema, arguments: self.settings
        ) { try GatewayConfiguration(config: $0) }
        let configuration = try GatewayConfiguration.read(from: stack)
        let logLevel = LogLevelControl(Logger.Level(rawValue: configuration.logging.level) ?? .info)
        logLevel.bootstrap()
        let logger = Logger(label: "fleetgate")
        for warning in stack.unknownEnvironmentWarnings() { logger.warning("\(warning)") }
        let gateway = try stack.locating {
            try Gateway(
                configuration: configuration, logger: logger, logLevel: logLevel,
                reloadSource: { try GatewayConfiguration.read(from: stack, again: true) })
        }
        // Once the gateway is built (a configuration it refuses was not loaded): what runs, in the first
        // lines an operator reads after a restart (helper-70: nothing named the file or the map, so a
        // restart that read another file than the one edited went unseen).
        logger.info(
            "Configuration loaded",
            metadata: [
                "fleet.version": "\(FleetVersion.current)",
                "fleet.config.file": "\(stack.filePath ?? "none (flags, environment and defaults)")",
                "fleet.regions.file": "\(configuration.geo.regionsFile ?? "embedded default map")",
                "fleet.regions.version": "\(configuration.geo.regionMap.version)",
                "fleet.geoip.database": "\(configuration.geo.databaseFile ?? "none")",
            ])
        do {
            try await gateway.runService()
        } catch let cut as StoppedAtSecondSignal {
            throw ExitCode(cut.exitCode)  // logged by runService
        }
    }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Configuration tools.", subcommands: [Check.self, Keys.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check fleetgate.yaml files; print every error as file:line:column and exit non-zero if any.")
        @Argument(help: "YAML files.") var files: [String]

        func run() async throws {
            let ok = ConfigCheck.report(
                files: self.files, program: .fleetgate, schema: GatewayConfiguration.schema,
                read: { try GatewayConfiguration.checked(config: $0) }, notes: Self.notes)
            if !ok { throw ExitCode(1) }
        }

        /// helper-109: a service (a DynamicUser, the container's uid 10001) ran without a GeoIP database
        /// while the check, run as root, found root's development copy and said ok.
        static func notes(_ configuration: GatewayConfiguration) -> [String] {
            switch configuration.geo.databaseFile {
            case nil:
                [
                    "note: no GeoIP database (geo.databaseFile is 'none', or empty without the development copy in this user's home): every public address gets the region map's noDatabase region"
                ]
            case GatewayConfiguration.Geo.setupDatabase:
                [
                    "note: the GeoIP database is the development copy in this user's home (\(configuration.geo.databaseFile ?? ""), what an empty geo.databaseFile finds); a service's user has none: name the database (e.g. /var/lib/GeoIP/GeoLite2-Country.mmdb)"
                ]
            default: []
            }
        }
    }

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every key with its default (Markdown).")
        func run() async throws { print(GatewayConfiguration.schema.markdownTable(environmentPrefix: "FLEETGATE")) }
    }
}
