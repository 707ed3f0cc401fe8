import Testing

@testable import FleetGate

@Suite("RefusalLogBudget: head refusals' lines are bounded, and the skipped ones counted")
struct RefusalLogBudgetTests {
    @Test("A burst of 200 lines, then 50 a second; the next line written counts the refusals without one")
    func budget() {
        let budget = RefusalLogBudget(now: 100)
        let burst = (0..<300).map { _ in budget.take(now: 100) }
        #expect(burst.prefix(200).allSatisfy { $0.log && $0.unlogged == 0 })
        #expect(burst.suffix(100).allSatisfy { !$0.log })
        // A second later, 50 lines' worth: the first says 100 went unlogged.
        let later = (0..<51).map { _ in budget.take(now: 101) }
        #expect(later.prefix(50).allSatisfy(\.log) && !later[50].log)
        #expect(later.map(\.unlogged) == [100] + Array(repeating: 0, count: 50))
        #expect(budget.take(now: 102) == (true, 1))
    }
}
