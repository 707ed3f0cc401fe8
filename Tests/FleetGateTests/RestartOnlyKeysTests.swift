import FleetConfiguration
import Testing

@testable import FleetGate

@Suite("Restart-only keys")
struct RestartOnlyKeysTests {
    @Test("Every key documented 'Restart.' keeps its running value on a reload; no key documented 'Reloadable' does")
    func docsAgreeWithTheReloader() {
        let running = GatewayConfiguration(fleetSecret: "restart-only-keys-secret-0123")
        var next = running
        let kept = GatewayReloader.keepRestartOnlyKeys(from: running, in: &next)
        #expect(kept.changed.isEmpty)
        func isKept(_ key: String) -> Bool { kept.all.contains { key == $0 || key.hasPrefix($0 + ".") } }
        for spec in GatewayConfiguration.schema.keys {
            if spec.summary.contains("Restart.") { #expect(isKept(spec.key), "\(spec.key) is documented 'Restart.'") }
            if spec.summary.contains("Reloadable") {
                #expect(!isKept(spec.key), "\(spec.key) is documented 'Reloadable'")
            }
        }
    }
}
