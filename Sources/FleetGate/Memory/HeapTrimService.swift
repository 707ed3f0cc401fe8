import Logging
import NIOCore
import ServiceLifecycle

/// Every ``interval``, gives the heap's freed memory back to the kernel when malloc holds more than
/// ``threshold`` of it (``HeapTrim``), so a gateway's RSS falls back after a flood instead of staying
/// at its high-water mark until it restarts.
///
/// Runs on the concurrency pool, never an event loop. Asking costs a walk of the free lists
/// (~0.3 ms with nothing to give back); a trim holds each arena's lock for a few milliseconds, so an
/// event loop that allocates meanwhile waits that long, once after a flood. Under steady load the
/// free memory stays under the threshold, and after a trim the process or its free memory must grow
/// again before the next.
struct HeapTrimService: Service {
    let logger: Logger
    var interval: Duration = .seconds(10)
    /// Free bytes held by malloc worth a trim: 16 MiB.
    var threshold = 16 << 20

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var last: LastTrim?
            while true {
                try await Task.sleep(for: self.interval)
                last = self.trimIfWorthIt(after: last)
            }
        }
    }

    /// What the last trim saw: malloc's free bytes, and the resident bytes it left.
    struct LastTrim: Equatable {
        var free: Int
        var resident: Int?
    }

    /// Trims when malloc holds ``threshold`` free and, since the last trim (`last`; nil before the first),
    /// the process grew by half of it or the free memory by all of it. Pages a trim gave back stay counted
    /// free, so without the second check it would trim, and say so, every interval; free memory that grew
    /// since covers a trim taken during a flood, whose memory was freed only after (helper-117). Returns
    /// what to compare with next time.
    func trimIfWorthIt(after last: LastTrim?) -> LastTrim? {
        let free = HeapTrim.freeBytes()
        guard free >= self.threshold else { return last }
        let before = HeapTrim.residentBytes()
        if let last {
            var grew = free - last.free >= self.threshold
            if let before, let resident = last.resident { grew = grew || before - resident >= self.threshold / 2 }
            guard grew else { return last }
        }
        let started = NIODeadline.now()
        HeapTrim.trim()
        let took = NIODeadline.now() - started
        let after = HeapTrim.residentBytes()
        self.logger.info(
            "Heap trimmed: freed memory given back to the kernel",
            metadata: [
                "fleet.heap.free.bytes": "\(free)", "process.memory.rss.before": "\(before ?? 0)",
                "process.memory.rss.after": "\(after ?? 0)",
                "fleet.trim.milliseconds": "\(took.nanoseconds / 1_000_000)",
            ])
        return LastTrim(free: free, resident: after)
    }
}
