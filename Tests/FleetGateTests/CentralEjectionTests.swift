import NIOCore
import Testing

@testable import FleetGate

@Suite("CentralEjection")
struct CentralEjectionTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test("Three failures in a row eject for 1 s; back on trial, each failure for 2, 4, 8, 16 and at most 30 s")
    func doubling() {
        var ejection = CentralEjection()
        var lengths: [Int64] = []
        var now = self.t0
        for round in 0..<8 {
            let needed = round == 0 ? CentralEjection.failuresToEject : 1
            for failure in 1...needed {
                let news = ejection.failed(at: now)
                guard failure == needed else {
                    #expect(news == .none)
                    continue
                }
                guard case .ejected(let length, let ejections) = news else {
                    Issue.record("round \(round): \(news)")
                    continue
                }
                #expect(ejections == round + 1)
                lengths.append(length.nanoseconds / 1_000_000_000)
                // Back in rotation once its time is over, and failing again.
                now = now + length
            }
        }
        #expect(lengths == [1, 2, 4, 8, 16, 30, 30, 30])
        let last = now - .seconds(30)
        #expect(ejection.holdsOut(at: last + .seconds(29)) && !ejection.holdsOut(at: last + .seconds(30)))
    }

    /// helper-132: attempts in flight when the endpoint was taken out fail after it, and each three of
    /// them ejected it again, doubling the time out.
    @Test("Failures while the endpoint is out count for nothing")
    func noEscalationWhileOut() {
        var ejection = CentralEjection()
        for _ in 0..<CentralEjection.failuresToEject { _ = ejection.failed(at: self.t0) }
        for _ in 0..<15 { #expect(ejection.failed(at: self.t0 + .milliseconds(500)) == .none) }
        #expect(ejection.retryAfter(at: self.t0, grace: .seconds(2)) == 1)
        #expect(ejection.failuresInARow == 0 && ejection.ejections == 1)
    }

    @Test("A served attempt ends the run: news of the recovery once, and the next ejection is 1 s again")
    func served() {
        var ejection = CentralEjection()
        #expect(ejection.served() == .none)
        for _ in 0..<CentralEjection.failuresToEject { _ = ejection.failed(at: self.t0) }
        #expect(ejection.failed(at: self.t0 + .seconds(1)) == .ejected(for: .seconds(2), ejections: 2))
        #expect(ejection.served() == .recovered(ejections: 2))
        #expect(ejection.served() == .none)
        #expect(!ejection.holdsOut(at: self.t0))
        for _ in 0..<(CentralEjection.failuresToEject - 1) { _ = ejection.failed(at: self.t0) }
        #expect(ejection.failed(at: self.t0) == .ejected(for: .seconds(1), ejections: 1))
    }

    @Test("Retry-After: the seconds left, rounded up, at least 1 within the grace after; then nil")
    func retryAfter() {
        var ejection = CentralEjection()
        #expect(ejection.retryAfter(at: self.t0, grace: .seconds(2)) == nil)
        for _ in 0..<CentralEjection.failuresToEject { _ = ejection.failed(at: self.t0 - .seconds(1)) }
        _ = ejection.failed(at: self.t0)  // back on trial and failing: out for 2 s
        #expect(ejection.retryAfter(at: self.t0, grace: .seconds(2)) == 2)
        #expect(ejection.retryAfter(at: self.t0 + .milliseconds(1_200), grace: .seconds(2)) == 1)
        #expect(ejection.retryAfter(at: self.t0 + .milliseconds(3_500), grace: .seconds(2)) == 1)
        #expect(ejection.retryAfter(at: self.t0 + .seconds(4), grace: .seconds(2)) == nil)
    }
}
