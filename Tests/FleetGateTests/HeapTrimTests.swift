import FleetTesting
import Logging
import Testing

@testable import FleetGate

/// helper-114: a flood's freed memory stayed resident until the gateway restarted.
@Suite("Heap trim: freed memory goes back to the kernel", .serialized)
struct HeapTrimTests {
    /// Frees `count` blocks of 200 bytes allocated below a live one (so none is at the heap's top, which
    /// glibc gives back by itself), runs `body`, then frees the live one.
    static func withFreedBlocks(count: Int, _ body: () -> Void) {
        let blocks = (0..<count).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 200, alignment: 8) }
        for block in blocks { block.storeBytes(of: 1, as: UInt64.self) }  // touched: resident
        let pin = UnsafeMutableRawPointer.allocate(byteCount: 200, alignment: 8)
        for block in blocks { block.deallocate() }
        body()
        pin.deallocate()
    }

    @Test("malloc holds what was freed below a live block; a trim gives it back")
    func trimReleases() throws {
        Self.withFreedBlocks(count: 250_000) {  // ~54 MB with malloc's headers
            #expect(HeapTrim.freeBytes() >= 40 << 20)
            guard let before = HeapTrim.residentBytes() else {
                Issue.record("no /proc/self/statm")
                return
            }
            #expect(HeapTrim.trim())
            let after = HeapTrim.residentBytes() ?? before
            #expect(before - after >= 32 << 20, "RSS \(before) → \(after)")
        }
    }

    @Test("The service trims only past its threshold and once the process grew since, and says what it gave back")
    func serviceThreshold() {
        let log = CapturedLog()
        let service = HeapTrimService(logger: Logger(label: "test") { _ in CapturedLog.Handler(sink: log) })
        var unreachable = service
        unreachable.threshold = 1 << 50  // what parallel tests freed may be over 16 MiB: a threshold none is
        Self.withFreedBlocks(count: 250_000) { _ = unreachable.trimIfWorthIt(residentAfterLastTrim: nil) }
        #expect(log.matching("Heap trimmed: freed memory given back to the kernel").isEmpty)
        Self.withFreedBlocks(count: 250_000) {
            let baseline = service.trimIfWorthIt(residentAfterLastTrim: nil)
            // What it gave back is still counted free: not trimmed (nor logged) again until the process grows.
            #expect(HeapTrim.freeBytes() >= 16 << 20)
            #expect(service.trimIfWorthIt(residentAfterLastTrim: baseline) == baseline)
        }
        let lines = log.matching("Heap trimmed: freed memory given back to the kernel")
        #expect(lines.count == 1)
        let before = Int(lines.first?.metadata["process.memory.rss.before"]?.description ?? "") ?? 0
        let after = Int(lines.first?.metadata["process.memory.rss.after"]?.description ?? "") ?? 0
        #expect(before - after >= 32 << 20, "\(before) → \(after)")
    }
}
