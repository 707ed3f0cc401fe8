import Foundation
import FleetProtocol
import Testing

@Suite("Identifier random numbers")
struct IdentifierRandomTests {
    @Test("A generated id is a version 4 UUID in lower case, as Foundation spells one")
    func uuidShape() throws {
        for _ in 0..<1_000 {
            let text = IdentifierRandom.uuidString()
            let parsed = try #require(UUID(uuidString: text))
            #expect(parsed.uuidString.lowercased() == text)
            let bytes = parsed.uuid
            #expect(bytes.6 >> 4 == 4)  // version
            #expect(bytes.8 >> 6 == 0b10)  // variant
        }
    }

    @Test("Ids do not repeat, and every hex digit of the random part varies")
    func unique() {
        let ids = (0..<10_000).map { _ in IdentifierRandom.uuidString() }
        #expect(Set(ids).count == ids.count)
        // Position 0 is random: over 10,000 ids all 16 digits appear there.
        #expect(Set(ids.map { $0.first! }).count == 16)
    }

    @Test("The generator's words are spread: each bit is set about half the time")
    func bits() {
        var random = IdentifierRandom()
        var counts = [Int](repeating: 0, count: 64)
        let draws = 4_000
        for _ in 0..<draws {
            let word = random.next()
            for bit in 0..<64 where word & (1 << UInt64(bit)) != 0 { counts[bit] += 1 }
        }
        // Binomial(4000, ½): σ ≈ 32; 6σ either side.
        #expect(counts.allSatisfy { abs($0 - draws / 2) < 190 })
    }
}
