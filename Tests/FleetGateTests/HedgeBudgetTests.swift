import Testing

@testable import FleetGate

@Suite("The hedge budget")
struct HedgeBudgetTests {
    @Test("It starts full, spends a token a hedge, and refills at its ratio a request")
    func startsFull() {
        let budget = HedgeBudget(ratio: 0.5, capacity: 3)
        #expect((0..<4).map { _ in budget.tryWithdraw() } == [true, true, true, false])
        budget.deposit()
        #expect(!budget.tryWithdraw(), "half a token")
        budget.deposit()
        #expect(budget.tryWithdraw())
        for _ in 0..<100 { budget.deposit() }
        #expect((0..<4).map { _ in budget.tryWithdraw() } == [true, true, true, false], "never more than its capacity")
    }

    @Test("A token a hedge could not use comes back, up to the capacity")
    func refund() {
        let budget = HedgeBudget(ratio: 0.05, capacity: 1)
        #expect(budget.tryWithdraw())
        #expect(!budget.tryWithdraw())
        budget.refund()
        budget.refund()
        #expect(budget.tryWithdraw())
        #expect(!budget.tryWithdraw(), "one token at most")
    }

    @Test("A ratio of zero never hedges, not even at the start")
    func zeroRatio() {
        let budget = HedgeBudget(ratio: 0)
        budget.deposit()
        #expect(!budget.tryWithdraw())
    }
}
