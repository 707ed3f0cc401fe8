import ArgumentParser

/// `fleet-load`: the live load harness (`run SCENARIO`), its report tool (`report`), and the
/// plain open-loop stream client the relay benchmark uses (`stream`, the default).
@main
struct FleetLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet-load",
        abstract: "Live load tests against FleetGate on loopback.",
        subcommands: [StreamCommand.self, RunCommand.self, ReportCommand.self, CheckCommand.self, VerifyReportCommand.self],
        defaultSubcommand: StreamCommand.self)
}
