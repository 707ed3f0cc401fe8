import NIOCore
import Testing

@testable import FleetGate

@Suite("PassBound: a loop behind its delay target caps what one pass admits")
struct PassBoundTests {
    /// Admits up to `count` requests in one pass while the cap allows; returns how many, the pass ended.
    func pass(_ b: inout PassBound, offering count: Int) -> Int {
        var admitted = 0
        for _ in 0..<count where b.allows(admittedThisPass: admitted) { admitted += 1 }
        b.passEnded(admitted: admitted)
        return admitted
    }

    @Test("No cap on a loop that is not behind, however large its passes; none for passes at the minimum")
    func noCapUntilBehind() {
        var b = PassBound()
        #expect(self.pass(&b, offering: 5000) == 5000)
        b.measured(behind: false, busy: 1, idle: false)
        #expect(b.limit == nil)
        _ = self.pass(&b, offering: 32)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == nil, "behind with passes of 32: they are not what makes it late")
    }

    @Test("Behind: half the largest pass, halved again while behind, never under the minimum")
    func cuts() {
        var b = PassBound()
        _ = self.pass(&b, offering: 30)
        _ = self.pass(&b, offering: 200)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == 100)
        #expect(self.pass(&b, offering: 500) == 100)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == 50)
        for _ in 0..<10 {
            _ = self.pass(&b, offering: 500)
            b.measured(behind: true, busy: 1, idle: false)
        }
        #expect(b.limit == 32)
    }

    @Test("Refusing on a busy loop probes the cap down; refusing with idle time grows it")
    func probeAndGrow() {
        var b = PassBound()
        _ = self.pass(&b, offering: 256)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == 128)
        _ = self.pass(&b, offering: 500)
        b.measured(behind: false, busy: 1, idle: false)
        #expect(b.limit == 120, "a sixteenth down: the loop stays busy with a smaller batch")
        // The loop now has idle time: the smoothed busy share falls under 0.95 and the cap grows.
        var limits: [Int] = []
        for _ in 0..<6 {
            _ = self.pass(&b, offering: 500)
            b.measured(behind: false, busy: 0.6, idle: false)
            limits.append(b.limit ?? -1)
        }
        #expect(limits.last! > 120)
        #expect(limits == limits.sorted(), "growing measurement by measurement once the smoothed share is low")
        // A pass under the cap refuses nothing: the cap does not move.
        let held = b.limit
        _ = self.pass(&b, offering: 3)
        b.measured(behind: false, busy: 0.6, idle: false)
        #expect(b.limit == held)
    }

    @Test("Lifted after 20 measurements without a refusal, or at once by an idle loop it refused on")
    func lifted() {
        var b = PassBound()
        _ = self.pass(&b, offering: 100)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == 50)
        for i in 0..<20 {
            #expect(b.limit == 50, "still set after \(i) calm measurements")
            _ = self.pass(&b, offering: 10)
            b.measured(behind: false, busy: 1, idle: false)
        }
        #expect(b.limit == nil)

        _ = self.pass(&b, offering: 100)
        b.measured(behind: true, busy: 1, idle: false)
        _ = self.pass(&b, offering: 100)
        b.measured(behind: false, busy: 0.1, idle: true)
        #expect(b.limit == nil)
    }

    @Test(
        "Passes stay timed for 200 measurements after the loop was behind with a large pass, renewed while a timed pass refuses on a busy loop"
    )
    func timedWindow() {
        var b = PassBound()
        #expect(!b.timesPasses, "never behind: a long pass (relaying tokens) is no overload")
        b.passEnded(admitted: 100)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.limit == 50 && b.timesPasses)
        for _ in 0..<150 { b.measured(behind: false, busy: 1, idle: false) }
        #expect(b.limit == nil, "lifted after 20 calm measurements")
        #expect(b.timesPasses, "150 measurements after being behind")
        b.refusedOnTime()  // the load is still there
        b.measured(behind: false, busy: 1, idle: false)
        for i in 0..<199 {
            #expect(b.timesPasses, "\(i) measurements after the last timed refusal")
            b.measured(behind: false, busy: 1, idle: false)
        }
        #expect(b.timesPasses)
        b.measured(behind: false, busy: 1, idle: false)
        #expect(!b.timesPasses, "200 measurements without being behind or refusing on time")
        b.passEnded(admitted: 100)
        b.measured(behind: true, busy: 1, idle: false)
        b.lift()  // delay shedding turned off
        #expect(!b.timesPasses && b.limit == nil)
    }

    @Test(
        "A loop behind with small passes (relaying car streams) is not timed, nor held timed by refusals while not busy"
    )
    func smallPassesAreNotTimed() {
        var b = PassBound()
        for _ in 0..<10 {
            b.passEnded(admitted: 5)
            b.measured(behind: true, busy: 1, idle: false)
        }
        #expect(b.limit == nil && !b.timesPasses, "passes of no more than the minimum are not what makes it late")
        b.passEnded(admitted: 33)
        b.measured(behind: true, busy: 1, idle: false)
        #expect(b.timesPasses)
        for _ in 0..<150 { b.measured(behind: false, busy: 0.5, idle: false) }
        b.refusedOnTime()  // a pass long from relaying, on a loop with idle time
        b.measured(behind: false, busy: 0.5, idle: false)
        for _ in 0..<49 { b.measured(behind: false, busy: 0.5, idle: false) }
        #expect(!b.timesPasses, "the window ran out: the refusal on a loop with idle time did not renew it")
    }

    @Test("In the shedder: a pass past its cap is shed (pass); the next pass admits again")
    func capInTheShedder() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var s = LoadShedder(configuration: .init(maxInFlight: 4096, lagThreshold: .milliseconds(5)))
        let busy = LoadShedder.ThreadTime(running: .milliseconds(10), waiting: .zero)  // all of 10 ms
        s.measured(lag: .milliseconds(1), thread: busy, at: start)
        #expect(s.countsPasses)
        for _ in 0..<80 {
            #expect(s.requestArrived(at: start + .milliseconds(1)) == .admit)
            s.requestFinished()
        }
        s.passEnded()
        s.measured(lag: .milliseconds(20), thread: busy, at: start + .milliseconds(10))
        #expect(s.passBound.limit == 40)
        var decisions: [LoadShedder.Decision] = []
        for _ in 0..<60 {
            let decision = s.requestArrived(at: start + .milliseconds(11))
            decisions.append(decision)
            if decision == .admit { s.requestFinished() }
        }
        #expect(decisions.filter { $0 == .admit }.count <= 40)
        let first = decisions.firstIndex(of: .shed(reason: .pass))
        #expect(first != nil)
        #expect(
            decisions[(first ?? 0)...].allSatisfy { $0 == .shed(reason: .pass) },
            "once the pass has admitted 40, every request in it is shed on the cap (before the share)")
        s.passEnded()
        #expect(s.screen(at: start + .milliseconds(12)) != .shed(reason: .pass), "a new pass")
        // Delay shedding off: no cap.
        s.configuration.lagThreshold = .zero
        s.measured(lag: .milliseconds(20), thread: busy, at: start + .milliseconds(20))
        #expect(s.passBound.limit == nil)
    }

    @Test("While the loop sheds, a pass admits for at most the target from its first admission; not before")
    func passTime() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let busy = LoadShedder.ThreadTime(running: .milliseconds(10), waiting: .zero)
        // Not shedding: a long pass (relaying car streams' tokens) admits all it reads.
        var calm = LoadShedder(configuration: .init(maxInFlight: 4096, lagThreshold: .milliseconds(5)))
        calm.measured(lag: .milliseconds(1), thread: busy, at: start)
        #expect(calm.countsPasses && calm.refused == 0 && calm.passBound.limit == nil)
        #expect(calm.requestArrived(at: start + .milliseconds(1)) == .admit)
        #expect(calm.requestArrived(at: start + .milliseconds(40)) == .admit)
        // Shedding (behind after a pass of 200: a cap of 100, and a share).
        var s = LoadShedder(configuration: .init(maxInFlight: 4096, lagThreshold: .milliseconds(5)))
        s.measured(lag: .milliseconds(1), thread: busy, at: start)
        for _ in 0..<200 {
            _ = s.requestArrived(at: start + .milliseconds(1))
            s.requestFinished()
        }
        s.passEnded()
        s.measured(lag: .milliseconds(20), thread: busy, at: start + .milliseconds(10))
        #expect(s.passBound.limit == 100 && s.refused > 0)
        var admittedAt: Int64?
        for ms in Int64(11)...20 where s.requestArrived(at: start + .milliseconds(ms)) == .admit {
            admittedAt = ms
            break
        }
        let first = admittedAt ?? 0
        #expect(admittedAt != nil, "the share lets some through")
        #expect(s.screen(at: start + .milliseconds(first + 5)) != .shed(reason: .pass), "5 ms after: in time")
        #expect(s.screen(at: start + .microseconds(1000 * (first + 5) + 1)) == .shed(reason: .pass))
        s.passEnded()
        #expect(s.screen(at: start + .milliseconds(first + 6)) != .shed(reason: .pass), "a new pass")
    }
}
