import FleetConfiguration
import Testing

@testable import FleetGate

@Suite("Restart-only keys")
struct RestartOnlyKeysTests {
    /// Keys a restart needs by docs/configuration.md's rule after its table, besides those marked "Restart.":
    /// these groups' keys, unless marked "Reloadable".
    static let restartGroups = [
        "listeners.", "admin.", "central.", "eventLoopThreads", "fleetSecret", "dispatch.policy",
    ]

    @Test("A reload keeps exactly the keys the docs say need a restart (helper-106: the rule was checked one way)")
    func docsAgreeWithTheReloader() {
        let running = GatewayConfiguration(fleetSecret: "restart-only-keys-secret-0123")
        var next = running
        let kept = GatewayReloader.keepRestartOnlyKeys(from: running, in: &next)
        #expect(kept.changed.isEmpty)
        func isKept(_ key: String) -> Bool { kept.all.contains { key == $0 || key.hasPrefix($0 + ".") } }
        for spec in GatewayConfiguration.schema.keys {
            let reloadable = spec.summary.contains("Reloadable")
            let restart =
                spec.summary.contains("Restart.")
                || (Self.restartGroups.contains { spec.key.hasPrefix($0) } && !reloadable)
            #expect(isKept(spec.key) == restart, "\(spec.key): documented \(restart ? "restart" : "reloadable")")
        }
    }
}
