import ArgumentParser
import FleetLoadKit

/// `fleet-load check SCENARIO…`: validates scenario files (file:line:column for every problem).
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Validate scenario files.")

    @Argument(help: "Scenario files.") var files: [String]

    func run() throws {
        var failed = false
        for file in self.files {
            do {
                let s = try Scenario.load(path: file)
                print("\(file): ok (\(s.carCount) cars, \(s.churn.count) churn rules)")
            } catch {
                print(error.description)
                failed = true
            }
        }
        if failed { throw ExitCode(1) }
    }
}
