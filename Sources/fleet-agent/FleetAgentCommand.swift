import ArgumentParser
import FleetAgent
import FleetConfiguration
import FleetHTTP2
import FleetProtocol
import Logging
import NIOCore

@main
struct FleetAgentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-agent",
        abstract: "The car-side agent: dials the gateway and serves inference on the tunnel.",
        discussion: """
            Configuration: flags > FLEET_AGENT_* environment > fleet-agent.yaml (or --config FILE) > defaults; \
            `fleet-agent config keys` lists every key. The token comes from FLEET_AGENT_TOKEN or --token-file, \
            never from a flag. SIGTERM drains.
            """,
        version: FleetVersion.current,
        subcommands: [Run.self, Serve.self, ConfigCommand.self, PKICommand.self]
    )
}

/// Reads the configuration, bootstraps logging, runs the agent in `role`.
func runAgent(_ settings: [String], role: Agent.Role) async throws {
    // Every error of the file at once, as the gateway's serve.
    let stack = try ConfigStack.reportingAll(
        program: .fleetAgent, schema: AgentProgramConfiguration.schema, arguments: settings
    ) { try AgentProgramConfiguration(config: $0) }
    let configuration = try stack.readReportingAll { try AgentProgramConfiguration(config: $0) }
    LogLevelControl(Logger.Level(rawValue: configuration.logLevel) ?? .info).bootstrap()
    let logger = Logger(label: "fleet-agent")
    for warning in stack.unknownEnvironmentWarnings() { logger.warning("\(warning)") }
    let agent = try await Agent(configuration: configuration, role: role, logger: logger)
    if let server = agent.server, role == .central {
        _ = server.boundAddress.map { print("fleet-agent serving on http://\($0.ipAddress ?? "?"):\($0.port ?? 0)/v1") }
    }
    do {
        try await agent.runService()
    } catch let refused as AgentRefused {
        logger.error("\(refused)", metadata: ["process.exit.code": "\(AgentRefused.exitCode)"])
        throw ExitCode(AgentRefused.exitCode)
    } catch let cut as StoppedAtSecondSignal {
        throw ExitCode(cut.exitCode)  // logged by runService
    }
}

/// Where `run`'s and `serve`'s settings are: configuration keys, not options of their own, so their
/// `--help` said nothing of them (helper-137); worded as `fleetgate serve --help`.
let settingsHelp = """
    Configuration: flags > FLEET_AGENT_* environment > fleet-agent.yaml (or --config FILE) > defaults. \
    Every key of docs/configuration.md is a flag and an environment variable (policy.minChargePercent: \
    --policy-min-charge-percent 50 or FLEET_AGENT_POLICY_MIN_CHARGE_PERCENT=50); `fleet-agent config keys` \
    lists them, `fleet-agent config check FILE` checks a file. SIGTERM drains.
    """

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dial the gateway's tunnel port and serve jobs.",
        discussion: "Required: vehicle.id (--vehicle-id), vehicle.region (--region), and the token "
            + "(FLEET_AGENT_TOKEN or tokenFile, --token-file; never a flag) or a vehicle certificate "
            + "(gateway.certificateFile, --cert). " + settingsHelp)
    @Argument(parsing: .allUnrecognized, help: "Configuration flags (see docs/configuration.md).")
    var settings: [String] = []

    func run() async throws { try await runAgent(self.settings, role: .car) }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Serve the engine as a plain OpenAI-compatible HTTP server (h2c + HTTP/1.1), e.g. as central capacity.",
        discussion: settingsHelp)
    @Argument(parsing: .allUnrecognized, help: "Configuration flags (see docs/configuration.md).")
    var settings: [String] = []

    func run() async throws { try await runAgent(self.settings, role: .central) }
}

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Configuration tools.", subcommands: [Check.self, Keys.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check fleet-agent.yaml files; print every error as file:line:column and exit non-zero if any.")
        @Argument(help: "YAML files.") var files: [String]

        func run() async throws {
            let ok = ConfigCheck.report(
                files: self.files, program: .fleetAgent, schema: AgentProgramConfiguration.schema
            ) { try AgentProgramConfiguration.checked(config: $0) }
            if !ok { throw ExitCode(1) }
        }
    }

    struct Keys: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every key with its default (Markdown).")
        func run() async throws {
            print(AgentProgramConfiguration.schema.markdownTable(environmentPrefix: "FLEET_AGENT"))
        }
    }
}
