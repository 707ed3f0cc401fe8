import Logging
import NIOCore
import ServiceLifecycle

/// Every ``interval``, gives the heap's freed memory back to the kernel when malloc holds more than its
/// threshold (``HeapTrimPolicy``, ``HeapTrim``), so a gateway's RSS falls back after a flood instead of
/// staying at its high-water mark until it restarts.
///
/// Runs on the concurrency pool, never an event loop. Asking costs a walk of the free lists
/// (~0.3 ms with nothing to give back); a trim holds each arena's lock for a few milliseconds, so an
/// event loop that allocates meanwhile waits that long, once after a flood. Under steady load the
/// free memory stays under the threshold, and after a trim the process or its free memory must grow
/// again before the next.
struct HeapTrimService: Service {
    let logger: Logger
    var interval: Duration = .seconds(10)
    /// When a trim is worth it (16 MiB free, and growth since the last).
    var policy = HeapTrimPolicy()

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var policy = self.policy
            while true {
                try await Task.sleep(for: self.interval)
                self.trimIfWorthIt(&policy)
            }
        }
    }

    /// Asks malloc and the process, trims when `policy` says so, and tells `policy` what the trim left.
    func trimIfWorthIt(_ policy: inout HeapTrimPolicy) {
        let free = HeapTrim.freeBytes()
        guard policy.mayTrim(free: free) else { return }  // the usual answer, without reading /proc
        let before = HeapTrim.residentBytes()
        guard policy.shouldTrim(free: free, resident: before) else { return }
        let started = NIODeadline.now()
        HeapTrim.trim()
        let took = NIODeadline.now() - started
        let after = HeapTrim.residentBytes()
        policy.trimmed(free: free, resident: after)
        self.logger.info(
            "Heap trimmed: freed memory given back to the kernel",
            metadata: [
                "fleet.heap.free.bytes": "\(free)", "process.memory.rss.before": "\(before ?? 0)",
                "process.memory.rss.after": "\(after ?? 0)",
                "fleet.trim.milliseconds": "\(took.nanoseconds / 1_000_000)",
            ])
    }
}
