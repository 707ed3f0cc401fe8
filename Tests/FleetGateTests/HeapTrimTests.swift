import FleetTesting
import Logging
import Testing

@testable import FleetGate

/// helper-114: a flood's freed memory stayed resident until the gateway restarted.
@Suite("Heap trim: freed memory goes back to the kernel", .serialized)
struct HeapTrimTests {
    /// `count` live blocks of 200 bytes, touched (resident).
    static func allocate(_ count: Int) -> [UnsafeMutableRawPointer] {
        let blocks = (0..<count).map { _ in UnsafeMutableRawPointer.allocate(byteCount: 200, alignment: 8) }
        for block in blocks { block.storeBytes(of: 1, as: UInt64.self) }
        return blocks
    }

    /// Frees every block but each 1,000th (`pins: false`), so none of the freed runs is at the heap's top,
    /// which glibc gives back by itself, wherever the live ones landed; or those (`pins: true`).
    static func free(_ blocks: [UnsafeMutableRawPointer], pins: Bool) {
        for (index, block) in blocks.enumerated() where (index % 1_000 == 999) == pins { block.deallocate() }
    }

    /// Frees `count` blocks between live ones, runs `body` with the resident bytes before the free, then
    /// frees the rest.
    static func withFreedBlocks(count: Int, _ body: (_ residentWhileLive: Int) -> Void) {
        let blocks = Self.allocate(count)
        let live = HeapTrim.residentBytes() ?? 0
        Self.free(blocks, pins: false)
        body(live)
        Self.free(blocks, pins: true)
    }

    @Test("malloc holds what was freed between live blocks; a trim gives it back")
    func trimReleases() throws {
        // The process's RSS is shared with the suites running beside this one: one that allocates tens of
        // MB between the two readings hides the drop (a CI run saw 18.6 MB). Up to three tries; without a
        // trim none of them drops (glibc keeps freed runs between live blocks).
        var drops: [Int] = []
        for _ in 0..<3 where !drops.contains(where: { $0 >= 32 << 20 }) {
            Self.withFreedBlocks(count: 250_000) { live in  // ~54 MB with malloc's headers
                #expect(HeapTrim.freeBytes() >= 40 << 20)
                HeapTrim.trim()
                // Against the resident bytes while the blocks were live: another gateway's trim in this
                // process (every 10 s) between the free and here gives the same drop.
                drops.append(live - (HeapTrim.residentBytes() ?? live))
            }
        }
        #expect(drops.contains { $0 >= 32 << 20 }, "RSS drops \(drops)")
    }

    @Test("The service trims past its threshold, then again only once the process or its free memory grew")
    func serviceThreshold() {
        let log = CapturedLog()
        let service = HeapTrimService(logger: Logger(label: "test") { _ in CapturedLog.Handler(sink: log) })
        var unreachable = HeapTrimPolicy(threshold: 1 << 50)  // what parallel tests freed may be over 16 MiB
        Self.withFreedBlocks(count: 250_000) { _ in service.trimIfWorthIt(&unreachable) }
        #expect(log.matching("Heap trimmed: freed memory given back to the kernel").isEmpty)
        let flood = Self.allocate(250_000)  // still live at the first trim, freed after it
        var policy = HeapTrimPolicy()
        Self.withFreedBlocks(count: 250_000) { live in
            service.trimIfWorthIt(&policy)
            let after = policy.lastResident ?? live
            #expect(live - after >= 32 << 20, "RSS \(live) → \(after)")
            // What it gave back is still counted free: not trimmed (nor logged) again until the process or
            // its free memory grows.
            #expect(HeapTrim.freeBytes() >= 16 << 20)
            let trimmed = policy
            service.trimIfWorthIt(&policy)
            #expect(policy == trimmed)
            #expect(log.matching("Heap trimmed: freed memory given back to the kernel").count == 1)
            // helper-117: memory freed only after a trim (a flood's, trimmed while it ran) is trimmed too.
            Self.free(flood, pins: false)
            service.trimIfWorthIt(&policy)
            #expect(policy != trimmed)
        }
        Self.free(flood, pins: true)
        #expect(log.matching("Heap trimmed: freed memory given back to the kernel").count == 2)
    }

    @Test("The policy: 16 MiB free for a first trim; after it, free memory grown by 16 MiB or the process by 8 MiB")
    func policy() {
        let mib = 1 << 20
        var policy = HeapTrimPolicy()
        #expect(!policy.shouldTrim(free: 16 * mib - 1, resident: 100 * mib))
        #expect(policy.shouldTrim(free: 16 * mib, resident: 100 * mib))
        #expect(policy.shouldTrim(free: 16 * mib, resident: nil))
        policy.trimmed(free: 40 * mib, resident: 60 * mib)
        // The pages it gave back still count free: no second trim for them.
        #expect(!policy.shouldTrim(free: 40 * mib, resident: 60 * mib))
        #expect(!policy.shouldTrim(free: 55 * mib, resident: 67 * mib))
        #expect(policy.shouldTrim(free: 56 * mib, resident: 60 * mib))  // free memory grew by the threshold
        #expect(policy.shouldTrim(free: 40 * mib, resident: 68 * mib))  // the process grew by half of it
        #expect(!policy.shouldTrim(free: 40 * mib, resident: nil))  // no size to compare: free memory only
        #expect(!policy.shouldTrim(free: 10 * mib, resident: 500 * mib))  // never under the threshold
    }
}
