import Logging
import ServiceLifecycle

/// Every ``interval``, gives the heap's freed memory back to the kernel when malloc holds more than
/// ``threshold`` of it (``HeapTrim``), so a gateway's RSS falls back after a flood instead of staying
/// at its high-water mark until it restarts.
///
/// Runs on the concurrency pool, never an event loop. Asking costs a walk of the free lists
/// (~0.3 ms with nothing to give back); a trim holds each arena's lock for a few milliseconds, so an
/// event loop that allocates meanwhile waits that long, once after a flood. Under steady load the
/// free memory stays under the threshold, and after a trim the process must grow again before the next.
struct HeapTrimService: Service {
    let logger: Logger
    var interval: Duration = .seconds(10)
    /// Free bytes held by malloc worth a trim: 16 MiB.
    var threshold = 16 << 20

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var residentAfterTrim: Int?
            while true {
                try await Task.sleep(for: self.interval)
                residentAfterTrim = self.trimIfWorthIt(residentAfterLastTrim: residentAfterTrim)
            }
        }
    }

    /// Trims when malloc holds ``threshold`` free and the process grew by half of it since the last trim
    /// (`residentAfterLastTrim`; nil before the first): pages a trim gave back stay counted free, so without
    /// the second check it would trim, and say so, every interval. Returns the resident bytes to compare
    /// with next time.
    func trimIfWorthIt(residentAfterLastTrim last: Int?) -> Int? {
        let free = HeapTrim.freeBytes()
        guard free >= self.threshold else { return last }
        let before = HeapTrim.residentBytes()
        if let last, let before, before < last + self.threshold / 2 { return last }
        let clock = ContinuousClock()
        let started = clock.now
        HeapTrim.trim()
        let took = clock.now - started
        let after = HeapTrim.residentBytes()
        self.logger.info(
            "Heap trimmed: freed memory given back to the kernel",
            metadata: [
                "fleet.heap.free.bytes": "\(free)", "process.memory.rss.before": "\(before ?? 0)",
                "process.memory.rss.after": "\(after ?? 0)", "fleet.trim.milliseconds": "\(took.milliseconds)",
            ])
        return after
    }
}

extension Duration {
    /// Whole milliseconds.
    fileprivate var milliseconds: Int64 {
        self.components.seconds * 1_000 + self.components.attoseconds / 1_000_000_000_000_000
    }
}
