@testable import FleetGate
import Testing

@Suite("AttemptMap")
struct AttemptMapTests {
    @Test("Random sets, removals and lookups agree with a Dictionary; keys keep the order they were added")
    func agreesWithDictionary() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var map = AttemptMap<String>()
            var reference: [Int: String] = [:]
            var order: [Int] = []
            for step in 0..<40 {
                let id = Int.random(in: 0..<6, using: &generator)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0, 1:
                    if reference[id] == nil { order.append(id) }
                    map[id] = "v\(step)"
                    reference[id] = "v\(step)"
                case 2:
                    #expect(map.removeValue(forKey: id) == reference.removeValue(forKey: id))
                    order.removeAll { $0 == id }
                default:
                    if reference[id] != nil { order.removeAll { $0 == id } }
                    map[id] = nil
                    reference[id] = nil
                }
                #expect(map[id] == reference[id])
                #expect(map.count == reference.count && map.isEmpty == reference.isEmpty)
                #expect(map.keys == order)
                #expect(map.values == order.map { reference[$0]! })
            }
        }
    }
}
