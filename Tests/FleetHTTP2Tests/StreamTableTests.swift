import Testing

@testable import FleetHTTP2

/// The stream table against a dictionary, under the same random inserts and removals — sequential
/// ids as clients send them, and ids chosen to share home slots as a hostile peer might.
@Suite("Stream table: the same answers as a dictionary", .timeLimit(.minutes(1)))
struct StreamTableTests {
    final class Box {
        let id: Int32
        init(_ id: Int32) { self.id = id }
    }

    @Test("random inserts, removals and lookups", arguments: ["sequential", "colliding"])
    func matchesDictionary(ids kind: String) {
        var generator = SystemRandomNumberGenerator()
        // Colliding: multiples of 2^16 share their low bits, the worst a peer can do without the constant.
        let pool: [Int32] = (1...600).map { kind == "sequential" ? Int32($0 * 2 - 1) : Int32($0) << 16 | 1 }
        let table = StreamTable<Box>()
        var reference: [Int32: Box] = [:]
        for step in 0..<20_000 {
            let id = pool.randomElement(using: &generator)!
            if Bool.random(using: &generator) || reference.count < 8 {
                let box = Box(id)
                table.insert(box, for: id)
                reference[id] = box
            } else {
                #expect(table.remove(id) === reference.removeValue(forKey: id))
            }
            #expect(table.count == reference.count)
            if step % 97 == 0 {
                for probe in pool { #expect(table[probe] === reference[probe]) }
                #expect(Set(table.all.map(\.id)) == Set(reference.keys))
            }
        }
        table.removeAll()
        #expect(table.count == 0 && table.all.isEmpty && table[pool[0]] == nil)
        #expect(table[0] == nil && table.remove(0) == nil)
    }
}
