import NIOCore
import Testing

@testable import FleetGate

@Suite("CentralEjection")
struct CentralEjectionTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    @Test("Three failures in a row eject for 1 s, then 2, 4, 8, 16 and at most 30 s while it keeps failing")
    func doubling() {
        var ejection = CentralEjection()
        var lengths: [Int64] = []
        for round in 0..<8 {
            for failure in 1...CentralEjection.failuresToEject {
                let news = ejection.failed(at: self.t0)
                guard failure == CentralEjection.failuresToEject else {
                    #expect(news == .none)
                    continue
                }
                guard case .ejected(let length, let ejections) = news else {
                    Issue.record("round \(round): \(news)")
                    continue
                }
                #expect(ejections == round + 1)
                lengths.append(length.nanoseconds / 1_000_000_000)
            }
        }
        #expect(lengths == [1, 2, 4, 8, 16, 30, 30, 30])
        #expect(ejection.holdsOut(at: self.t0 + .seconds(29)) && !ejection.holdsOut(at: self.t0 + .seconds(30)))
    }

    @Test("A served attempt ends the run: news of the recovery once, and the next ejection is 1 s again")
    func served() {
        var ejection = CentralEjection()
        #expect(ejection.served() == .none)
        for _ in 0..<(2 * CentralEjection.failuresToEject) { _ = ejection.failed(at: self.t0) }
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
        for _ in 0..<(2 * CentralEjection.failuresToEject) { _ = ejection.failed(at: self.t0) }
        #expect(ejection.retryAfter(at: self.t0, grace: .seconds(2)) == 2)
        #expect(ejection.retryAfter(at: self.t0 + .milliseconds(1_200), grace: .seconds(2)) == 1)
        #expect(ejection.retryAfter(at: self.t0 + .milliseconds(3_500), grace: .seconds(2)) == 1)
        #expect(ejection.retryAfter(at: self.t0 + .seconds(4), grace: .seconds(2)) == nil)
    }
}
