import NIOCore
import Testing

@testable import FleetGate

@Suite("ConcurrencyBound: a loop behind its delay target caps its requests in flight")
struct ConcurrencyBoundTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func at(_ milliseconds: Int64) -> NIODeadline { Self.start + .milliseconds(milliseconds) }

    /// Admits while the bound allows, up to `count`, from `inFlight`; returns the new in-flight count.
    func admit(_ b: inout ConcurrencyBound, from inFlight: Int, count: Int) -> Int {
        var n = inFlight
        for _ in 0..<count where b.allows(inFlight: n) {
            n += 1
            b.admitted(inFlight: n)
        }
        return n
    }

    /// A bound cut once: a pass admitted 100, then a measurement behind the target (limit 90).
    func cutAfterPassOf100(maxInFlight: Int) -> ConcurrencyBound {
        var b = ConcurrencyBound()
        _ = self.admit(&b, from: 0, count: 100)
        b.measured(behind: true, idle: false, inFlight: 100, maxInFlight: maxInFlight, at: self.at(0))
        return b
    }

    @Test("No bound on a loop that is not behind, however many are in flight")
    func noBoundUntilBehind() {
        var b = ConcurrencyBound()
        let n = self.admit(&b, from: 0, count: 5000)
        b.measured(behind: false, idle: false, inFlight: n, maxInFlight: 10_000, at: self.at(0))
        #expect(b.limit == nil)
        #expect(self.admit(&b, from: n, count: 100) == n + 100)
    }

    @Test("Behind: the bound is 0.9 of the peak since the last measurement, cuts 20 ms apart, never under 16")
    func cuts() {
        var b = ConcurrencyBound()
        _ = self.admit(&b, from: 0, count: 200)  // a pass admitted 200 ...
        b.measured(behind: true, idle: false, inFlight: 120, maxInFlight: 4096, at: self.at(0))  // ... 80 finished
        #expect(b.limit == 180)
        let refusedAt180 = !b.allows(inFlight: 180)
        let admittedAt179 = b.allows(inFlight: 179)
        #expect(refusedAt180 && admittedAt179)
        b.measured(behind: true, idle: false, inFlight: 100, maxInFlight: 4096, at: self.at(10))
        #expect(b.limit == 180, "a second cut within 20 ms")
        b.measured(behind: true, idle: false, inFlight: 100, maxInFlight: 4096, at: self.at(25))
        #expect(b.limit == 90, "0.9 of the recent peak, now under the bound")
        for i in 0..<60 {
            let inFlight = min(b.limit ?? 40, 40)  // short requests: in flight follows the bound down
            b.measured(
                behind: true, idle: false, inFlight: inFlight, maxInFlight: 4096, at: self.at(50 + 25 * Int64(i)))
        }
        #expect(b.limit == 16)
        b.lift()
        b.measured(behind: false, idle: false, inFlight: 16, maxInFlight: 4096, at: self.at(5000))
        b.measured(behind: true, idle: false, inFlight: 16, maxInFlight: 4096, at: self.at(5030))
        #expect(b.limit == nil, "behind with no more than the minimum in flight: nothing to clip")
    }

    @Test("Long streams above the bound: no further cut until it is seen; under the target it grows from them")
    func longStreams() {
        var b = ConcurrencyBound()
        _ = self.admit(&b, from: 0, count: 2000)  // streams of seconds
        b.measured(behind: true, idle: false, inFlight: 2000, maxInFlight: 10_000, at: self.at(0))
        #expect(b.limit == 1800)
        for i in 1...50 {  // behind for a second, none finishing
            b.measured(behind: true, idle: false, inFlight: 2000, maxInFlight: 10_000, at: self.at(20 * Int64(i)))
        }
        #expect(b.limit == 1800, "cut again before the first cut was seen")
        let refused = !b.allows(inFlight: 2000)
        #expect(refused)
        b.measured(behind: false, idle: false, inFlight: 2000, maxInFlight: 10_000, at: self.at(1100))
        #expect(b.limit == 2250, "an eighth above the streams in flight, not above the stale bound")
    }

    @Test("Under the target it grows only after it refused, by an eighth; past maxInFlight it is lifted")
    func grows() {
        var b = self.cutAfterPassOf100(maxInFlight: 200)
        #expect(b.limit == 90)
        b.measured(behind: false, idle: false, inFlight: 50, maxInFlight: 200, at: self.at(5))
        #expect(b.limit == 90, "nothing refused: no growth")
        #expect(self.admit(&b, from: 50, count: 60) == 90)  // 20 refused
        b.measured(behind: false, idle: false, inFlight: 90, maxInFlight: 200, at: self.at(10))
        #expect(b.limit == 101)
        var limit = 101
        for i in 0..<10 {
            guard let current = b.limit else { break }
            limit = current
            let refused = !b.allows(inFlight: current)
            #expect(refused)
            b.measured(behind: false, idle: false, inFlight: current, maxInFlight: 200, at: self.at(15 + 5 * Int64(i)))
        }
        #expect(limit > 170 && b.limit == nil)
    }

    @Test("Lifted by 20 measurements in a row under the target, or at once when idle after a refusal")
    func lifted() {
        var b = self.cutAfterPassOf100(maxInFlight: 4096)
        for i in 1...19 {
            b.measured(behind: false, idle: true, inFlight: 0, maxInFlight: 4096, at: self.at(50 * Int64(i)))
        }
        b.measured(behind: true, idle: false, inFlight: 10, maxInFlight: 4096, at: self.at(1000))  // behind again: no cut (10)
        for i in 21...39 {
            b.measured(behind: false, idle: false, inFlight: 0, maxInFlight: 4096, at: self.at(50 * Int64(i)))
        }
        #expect(b.limit == 90, "19 in a row, then an interruption, then 19")
        b.measured(behind: false, idle: false, inFlight: 0, maxInFlight: 4096, at: self.at(2000))
        #expect(b.limit == nil, "the 20th")
        _ = self.admit(&b, from: 0, count: 100)
        b.measured(behind: true, idle: false, inFlight: 100, maxInFlight: 4096, at: self.at(3000))
        #expect(b.limit == 90)
        let refused = !b.allows(inFlight: 95)  // long streams still above the bound
        #expect(refused)
        b.measured(behind: false, idle: true, inFlight: 95, maxInFlight: 4096, at: self.at(3050))
        #expect(b.limit == nil, "an idle loop refusing on a bound is lifted at once")
    }

    @Test(
        "A refusal after routing (zone busy) brings a set bound to the count in flight and stops its growth; no bound, no change"
    )
    func upstreamBusy() {
        var b = ConcurrencyBound()
        b.upstreamBusy(inFlight: 256)
        #expect(b.limit == nil, "a busy zone alone does not bound the loop")
        _ = self.admit(&b, from: 0, count: 300)
        b.measured(behind: true, idle: false, inFlight: 300, maxInFlight: 4096, at: self.at(0))
        #expect(b.limit == 270)
        b.upstreamBusy(inFlight: 256)
        #expect(b.limit == 256)
        let refused = !b.allows(inFlight: 256)
        #expect(refused)
        b.measured(behind: false, idle: false, inFlight: 250, maxInFlight: 4096, at: self.at(5))
        #expect(b.limit == 256, "no growth over a busy zone")
        b.upstreamBusy(inFlight: 3)
        #expect(b.limit == 16, "never under the minimum")
    }

    @Test("The bound's own refusals keep it from being lifted as calm; 20 measurements without them lift it")
    func calmMeansNotBinding() {
        var b = self.cutAfterPassOf100(maxInFlight: 4096)
        b.upstreamBusy(inFlight: 90)
        #expect(b.limit == 90)
        for i in 1...30 {
            _ = b.allows(inFlight: b.limit ?? 0)  // refused: the bound is at work (and grows)
            b.measured(behind: false, idle: false, inFlight: b.limit ?? 0, maxInFlight: 4096, at: self.at(5 * Int64(i)))
        }
        let grown = b.limit
        #expect(grown != nil && grown! > 90)
        for i in 31...49 {
            b.measured(behind: false, idle: false, inFlight: 50, maxInFlight: 4096, at: self.at(5 * Int64(i)))
        }
        #expect(b.limit == grown)
        b.measured(behind: false, idle: false, inFlight: 50, maxInFlight: 4096, at: self.at(250))
        #expect(b.limit == nil)
    }

    @Test(
        "A zone that stays busy after the overload neither holds nor lowers the bound: lifted after 20 calm measurements"
    )
    func busyZoneDoesNotPin() {
        var b = self.cutAfterPassOf100(maxInFlight: 4096)
        #expect(b.limit == 90)
        for i in 1...100 {
            b.upstreamBusy(inFlight: 40)  // zone A full, every measurement
            if i <= 19 { #expect(b.limit == 40) }
            b.measured(behind: false, idle: false, inFlight: 40, maxInFlight: 4096, at: self.at(5 * Int64(i)))
            if b.limit == nil { break }
        }
        #expect(b.limit == nil)
    }

    @Test("In the shedder: behind with 100 in flight, the 91st is shed (concurrency); a zero target lifts the bound")
    func inTheShedder() {
        var s = LoadShedder(configuration: .init(maxInFlight: 4096, lagThreshold: .milliseconds(5)))
        for _ in 0..<100 { #expect(s.requestArrived(at: self.at(0)) == .admit) }
        s.passEnded()
        let busy = LoadShedder.ThreadTime(running: .milliseconds(5), waiting: .zero)
        s.measured(lag: .milliseconds(1), thread: busy, at: self.at(5))
        s.measured(lag: .milliseconds(20), thread: busy, at: self.at(10))
        #expect(s.bound.limit == 90)
        for _ in 0..<20 { s.requestFinished() }  // 80 in flight
        var admitted = 0
        var shed: [LoadShedder.Decision] = []
        for _ in 0..<20 {
            let decision = s.screen(at: self.at(11))
            if decision == .admit {
                s.admitted()
                admitted += 1
            } else {
                shed.append(decision)
            }
        }
        #expect(admitted <= 10 && s.inFlight <= 90)
        #expect(shed.contains(.shed(reason: .concurrency)))
        #expect(shed.allSatisfy { $0 == .shed(reason: .lag) || $0 == .shed(reason: .concurrency) })
        s.configuration.lagThreshold = .zero
        s.measured(lag: .milliseconds(20), thread: busy, at: self.at(15))
        #expect(s.bound.limit == nil)
    }
}
