import FleetProtocol
import NIOCore
import Testing

/// `ByteBuffer.writeConcatenation`, the agent's one write per token chunk, against three `writeBytes`.
@Suite("ByteBuffer concatenation")
struct ByteBufferConcatenationTests {
    @Test("Three parts written at once are the bytes three writes give, whatever the buffer held and its capacity")
    func matchesThreeWrites() {
        var random = SplitMix64(seed: 3)
        for round in 0..<2_000 {
            let parts = (0..<3).map { _ in (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
            let held = (0..<Int(random.next() % 100)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var safe = ByteBuffer(bytes: held)
            var fast = ByteBuffer()
            if round % 3 == 0 { fast.reserveCapacity(Int(random.next() % 1_000)) }
            fast.writeBytes(held)
            if round % 5 == 0 { fast.moveReaderIndex(forwardBy: min(3, fast.readableBytes)); safe.moveReaderIndex(forwardBy: min(3, safe.readableBytes)) }
            let shared = fast  // a second reference: the write must copy, not write into it
            for part in parts { safe.writeBytes(part) }
            let written = parts[0].withUnsafeBytes { a in
                parts[1].withUnsafeBytes { b in parts[2].withUnsafeBytes { c in fast.writeConcatenation(a, b, c) } }
            }
            #expect(written == parts.map(\.count).reduce(0, +))
            #expect(Array(fast.readableBytesView) == Array(safe.readableBytesView), "round \(round)")
            #expect(shared.readableBytes == held.count - (round % 5 == 0 ? min(3, held.count) : 0))
        }
    }
}
