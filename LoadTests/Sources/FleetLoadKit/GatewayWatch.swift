import Foundation
import Synchronization

/// Watches the gateway through a run: its CPU time while it lives, and whether and when it ended.
///
/// A gateway that dies mid-run must fail the run by name ("gateway still running"), not only
/// through the error rate its absence causes, and its CPU must be what it used before it died
/// (read after its death, `/proc` has nothing: the figure was 0).
package final class GatewayWatch: Sendable {
    struct State {
        /// When it ended (seconds after the watch began); nil while it runs.
        var endedAt: Double?
        /// Its CPU seconds at the last look.
        var cpuSeconds: Double?
    }

    private let state = Mutex(State())

    /// What the watch has seen.
    var seen: State { self.state.withLock { $0 } }

    /// Looks every `interval` until the process `pid` ends (then calls `onEnd` once) or the task is cancelled.
    func run(pid: Int32, interval: Duration = .milliseconds(250), onEnd: @Sendable () -> Void) async {
        let clock = ContinuousClock()
        let start = clock.now
        while !Task.isCancelled {
            guard Self.isAlive(pid) else {
                self.state.withLock { $0.endedAt = (clock.now - start).seconds }
                onEnd()
                return
            }
            if let cpu = ProcessSampler.cpuSeconds(pid: pid) { self.state.withLock { $0.cpuSeconds = cpu } }
            try? await Task.sleep(for: interval)
        }
    }

    /// Whether `pid` runs: it has a `/proc` entry that is not a zombie's.
    package static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }
}
