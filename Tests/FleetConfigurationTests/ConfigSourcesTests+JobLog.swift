import FleetAgent
import FleetConfiguration
import Foundation
import Testing

extension ConfigSourcesTests {
    /// helper-137: a job log in a directory that is not there passed `fleet-agent config check`, and `run`
    /// stopped on it.
    @Test("fleet-agent config check refuses a job log the agent cannot create, at its line, as run does")
    func agentJobLog() throws {
        let check = { (yaml: String) -> ConfigCheck.Result in
            let path = try Self.write(yaml)
            defer { try? FileManager.default.removeItem(atPath: path) }
            return ConfigCheck.run(
                file: path, program: .fleetAgent, schema: AgentProgramConfiguration.schema, environment: [:]
            ) { try AgentProgramConfiguration.checked(config: $0) }
        }
        let missing = try check("drainSeconds: 20\njobLog: /nonexistent-fleet-dir/jobs.ndjson\n")
        #expect(!missing.ok)
        #expect(
            missing.lines == [
                "\(missing.errors.first?.location.map { "\($0)" } ?? "?"): key 'jobLog': '/nonexistent-fleet-dir/jobs.ndjson': its directory /nonexistent-fleet-dir does not exist (the agent creates the file, not the directory)"
            ], "\(missing.lines)")
        #expect(missing.errors.first?.location?.line == 2, "\(missing.lines)")
        let directory = FileManager.default.temporaryDirectory.path
        let isDirectory = try check("jobLog: \(directory)\n")
        #expect(!isDirectory.ok && isDirectory.lines.contains { $0.contains("is a directory") }, "\(isDirectory.lines)")
        let fine = try check("jobLog: \(directory)/jobs-\(UUID().uuidString).ndjson\n")
        #expect(fine.ok, "\(fine.lines)")
    }
}
