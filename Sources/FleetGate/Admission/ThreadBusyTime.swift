#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How long the calling thread has run on a CPU, and waited for one. Read on an event loop's own
/// thread by its lag task, so ``LoadShedder`` can tell a loaded loop from one that sleeps in
/// `epoll_wait` — NIO's own per-tick report counts socket reads and writes as sleep, so it
/// cannot — and a lag the loop caused from one the machine's other processes caused.
///
/// It is Linux's `/proc/thread-self/schedstat` (CPU time and run-queue wait, ns), kept open and
/// re-read with `pread` (about 2 µs). Elsewhere, or if the file cannot be read, there is no
/// measurement (nil) and the shedder goes by the lag alone.
///
/// Not Sendable: it belongs to the thread that created it.
final class ThreadBusyTime {
    private let descriptor: Int32

    /// Opens the calling thread's statistics.
    init() {
        #if os(Linux)
        self.descriptor = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)
        #else
        self.descriptor = -1
        #endif
    }

    deinit {
        if self.descriptor >= 0 { close(self.descriptor) }
    }

    /// Nanoseconds the thread has run on a CPU and waited on a run queue since it started, or nil
    /// where that cannot be read.
    func read() -> (running: UInt64, waiting: UInt64)? {
        guard self.descriptor >= 0 else { return nil }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 96) { buffer -> (UInt64, UInt64)? in
            let count = pread(self.descriptor, buffer.baseAddress, buffer.count, 0)
            guard count > 0 else { return nil }
            return Self.parse(UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// The first two numbers of a schedstat line
    /// ("<ns on CPU> <ns waiting on a run queue> <timeslices>\n"), or nil if it does not start with two.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> (running: UInt64, waiting: UInt64)? {
        var first: UInt64?
        var value: UInt64 = 0
        var digits = 0
        for byte in bytes {
            if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") {
                let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
                guard !overflow1, !overflow2 else { return nil }
                value = sum
                digits += 1
            } else {
                guard digits > 0 else { return nil }
                if let first { return (first, value) }
                first = value
                value = 0
                digits = 0
            }
        }
        return nil
    }
}
