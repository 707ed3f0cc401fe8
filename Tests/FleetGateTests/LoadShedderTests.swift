import NIOCore
import Testing

@testable import FleetGate

@Suite("LoadShedder: an event loop sheds instead of queueing")
struct LoadShedderTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func shedder(maxInFlight: Int = 3, lagMilliseconds: Int64 = 5) -> LoadShedder {
        LoadShedder(configuration: .init(maxInFlight: maxInFlight, lagThreshold: .milliseconds(lagMilliseconds)))
    }

    /// Feeds `samples` (lag in ms, the share of the time the thread could run that it ran, nil
    /// for no thread measurement) 5 ms apart; the thread waited `waiting` ms for a CPU in each.
    func feed(
        _ s: inout LoadShedder, _ samples: [(lag: Double, busy: Double?)], from first: Int = 0, waiting: Double = 0
    ) {
        for (i, sample) in samples.enumerated() {
            let thread = sample.busy.map { busy in
                LoadShedder.ThreadTime(
                    running: .nanoseconds(Int64(busy * (5 - waiting) * 1e6)),
                    waiting: .nanoseconds(Int64(waiting * 1e6)))
            }
            s.measured(
                lag: .nanoseconds(Int64(sample.lag * 1e6)), thread: thread,
                at: Self.start + .milliseconds(Int64(5 * (first + i))))
        }
    }

    /// Of `count` new requests (each finished at once), how many were admitted.
    func admitted(_ s: inout LoadShedder, of count: Int) -> Int {
        (0..<count).reduce(0) { n, _ in
            guard s.requestArrived(at: Self.start) == .admit else { return n }
            s.requestFinished()
            return n + 1
        }
    }

    @Test("A pass's first admission asks for its end after the pass; a loop far from its limit ends it at once")
    func passAction() {
        var s = self.shedder(maxInFlight: 100, lagMilliseconds: 20)
        #expect(s.countsPasses, "unmeasured: the busy interval")
        #expect(s.admitted() == .endAfterThisPass)
        #expect(s.admitted() == .none && s.passAdmitted == 2)
        s.passEnded()
        #expect(s.admitted() == .endAfterThisPass && s.passAdmitted == 1)
        s.passEnded()
        self.feed(&s, [(lag: 0.2, busy: 0.2), (lag: 0.2, busy: 0.2)])
        #expect(!s.countsPasses)
        #expect(s.admitted() == .none && s.passAdmitted == 0, "counted and ended at once: no task a request")
    }

    @Test("A loop far from its limit is measured every 50 ms; one that is busy, lagging or shedding every 5 ms")
    func measurementInterval() {
        var s = self.shedder(lagMilliseconds: 20)
        self.feed(&s, [(lag: 0.2, busy: 0.2)])
        #expect(s.nextInterval == .milliseconds(5), "the first measurement has no busy share: busy")
        self.feed(&s, [(lag: 0.2, busy: 0.2)], from: 1)
        #expect(s.nextInterval == .milliseconds(50))
        self.feed(&s, [(lag: 0.2, busy: 0.6)], from: 2)
        #expect(s.nextInterval == .milliseconds(5))
        self.feed(&s, [(lag: 0.2, busy: 0.1)], from: 3)
        #expect(s.nextInterval == .milliseconds(50))
        self.feed(&s, [(lag: 6, busy: 0.1)], from: 4)
        #expect(s.nextInterval == .milliseconds(5), "a lag over a quarter of the target")
        // Overloaded: refusing; it stays on the short interval until nothing is refused.
        self.feed(&s, Array(repeating: (lag: 60, busy: 1), count: 10), from: 5)
        #expect(s.refused > 0 && s.nextInterval == .milliseconds(5))
        self.feed(&s, Array(repeating: (lag: 0.1, busy: 0.1), count: 40), from: 15)
        #expect(s.refused == 0 && s.nextInterval == .milliseconds(50))
        // A burst on the idle loop asks for the next measurement at the busy interval.
        for _ in 0..<15 { _ = s.screen(at: Self.start) }
        #expect(!s.wantsEarlyMeasurement)
        _ = s.screen(at: Self.start)
        #expect(s.wantsEarlyMeasurement)
        s.measuringSoon()
        #expect(!s.wantsEarlyMeasurement && s.nextInterval == .milliseconds(5))
    }

    @Test("Admits up to maxInFlight, then sheds with reason in_flight until one finishes")
    func inFlightBound() {
        var s = self.shedder()
        #expect(s.requestArrived(at: Self.start) == .admit)
        #expect(s.requestArrived(at: Self.start) == .admit)
        #expect(s.requestArrived(at: Self.start) == .admit)
        #expect(s.requestArrived(at: Self.start) == .shed(reason: .inFlight))
        #expect(s.inFlight == 3, "a shed request is not counted")
        s.requestFinished()
        #expect(s.requestArrived(at: Self.start) == .admit)
    }

    @Test("screen decides without counting in flight; admitted counts (HTTP/2 screens on the header block)")
    func screenThenAdmit() {
        var s = self.shedder(maxInFlight: 1)
        #expect(s.screen(at: Self.start) == .admit)
        #expect(s.inFlight == 0, "a screened request that does not go on (401) holds nothing")
        #expect(s.screen(at: Self.start) == .admit)
        s.admitted()
        #expect(s.inFlight == 1)
        #expect(s.screen(at: Self.start) == .shed(reason: .inFlight))
        s.requestFinished()
        #expect(s.screen(at: Self.start) == .admit)
    }

    @Test("A standing delay on a busy loop refuses a growing share, spread evenly")
    func standingDelay() {
        var s = self.shedder(maxInFlight: 1000)
        self.feed(&s, Array(repeating: (15, 1), count: 20))  // 100 ms, 10 ms over the target
        #expect(s.refused > 0.3 && s.refused < 0.98, "\(s.refused)")
        let share = s.refused
        let decisions = (0..<100).map { _ in s.requestArrived(at: Self.start) }
        let admitted = decisions.filter { $0 == .admit }.count
        #expect(abs(Double(admitted) - 100 * (1 - share)) <= 1)
        #expect(decisions.contains(.shed(reason: .lag)))
        // Evenly: never more admissions in a row than the share allows.
        var run = 0
        var longest = 0
        for decision in decisions {
            run = decision == .admit ? run + 1 : 0
            longest = max(longest, run)
        }
        #expect(longest <= Int((1 - share) / share) + 1)
    }

    @Test(
        "No shedding without both a delay over the target and a busy thread",
        arguments: [
            (lag: 50.0, busy: 0.3 as Double?),  // a stall, not load: the thread slept
            (lag: 4.0, busy: 1.0),  // saturated by a closed-loop client: its queue stays short
            (lag: 5.0, busy: 1.0),  // at the target, not over it
        ])
    func gate(lag: Double, busy: Double?) {
        var s = self.shedder()
        self.feed(&s, Array(repeating: (lag, busy), count: 200))
        #expect(s.refused == 0)
        #expect(s.requestArrived(at: Self.start) == .admit)
    }

    @Test("A lag from waiting for a CPU other processes hold is not the loop's queue: no shedding")
    func starved() {
        var s = self.shedder()
        self.feed(&s, Array(repeating: (30, 1), count: 200), waiting: 28)
        #expect(s.refused == 0)
        #expect(s.lastOwnLag == .milliseconds(2))
        var queued = self.shedder()  // the same lag with only 10 ms of it waiting: 20 ms is the loop's own
        self.feed(&queued, Array(repeating: (30, 1), count: 20), waiting: 10)
        #expect(queued.refused > 0.3)
    }

    @Test("Without a busy measurement (unsupported platform) the delay alone decides")
    func noBusyMeasurement() {
        var s = self.shedder()
        self.feed(&s, Array(repeating: (20, nil), count: 10))
        #expect(s.refused > 0)
    }

    @Test("One stall undoes itself: its rise and fall cancel")
    func stall() {
        var s = self.shedder()
        self.feed(&s, [(1, 1), (150, 1)])
        #expect(s.refused == LoadShedder.Configuration(maxInFlight: 1, lagThreshold: .zero).maxRefused)
        self.feed(&s, [(1, 1)], from: 2)
        #expect(s.refused == 0)
        #expect(s.requestArrived(at: Self.start) == .admit)
    }

    @Test("Once the delay is back under the target the share shrinks, and at once on an idle loop")
    func recovery() {
        var busy = self.shedder()
        self.feed(&busy, Array(repeating: (30, 1), count: 20))
        let peak = busy.refused
        self.feed(&busy, [(2, 1)], from: 20)
        #expect(busy.refused < peak)
        self.feed(&busy, Array(repeating: (2, 1), count: 200), from: 21)
        #expect(busy.refused == 0)

        var idle = self.shedder()
        self.feed(&idle, Array(repeating: (30, 1), count: 20))
        self.feed(&idle, Array(repeating: (5, 0.2), count: 20), from: 20)
        #expect(idle.refused < 0.01)
    }

    @Test("A request read deep inside one long loop pass is refused without waiting for the next measurement")
    func passCeiling() {
        var s = self.shedder(maxInFlight: 1000)
        self.feed(&s, [(0, 0.5)])  // the next is due at +5 ms; 8 × 5 ms later a pass is too long
        #expect(s.requestArrived(at: Self.start + .milliseconds(45)) == .admit)
        #expect(s.requestArrived(at: Self.start + .milliseconds(46)) == .shed(reason: .lag))
        #expect(s.refused == 0, "the share itself waits for a measurement")
        #expect(s.isPastCeiling(at: Self.start + .milliseconds(60)))
        s.passEnded()  // (the pass's own time budget is `PassBoundTests`' subject)
        #expect(
            s.requestArrived(at: Self.start + .milliseconds(60), waited: .milliseconds(20)) == .admit,
            "20 ms of it waiting for a CPU: the loop's own pass is 35 ms")
        s.measurementsStopped()  // shutdown: no measurement is due any more
        s.passEnded()
        #expect(s.requestArrived(at: Self.start + .seconds(5)) == .admit)
    }

    @Test("A zero lag threshold turns delay shedding off, even mid-shedding (a reload)")
    func lagOff() {
        var s = self.shedder()
        self.feed(&s, Array(repeating: (500, 1), count: 3))
        #expect(s.requestArrived(at: Self.start) == .shed(reason: .lag))
        s.configuration.lagThreshold = .zero
        self.feed(&s, [(500, 1)], from: 3)
        #expect(s.requestArrived(at: Self.start) == .admit)
    }

    @Test("Shedding counts nothing in flight, and in-flight work still finishes")
    func shedKeepsCount() {
        var s = self.shedder(maxInFlight: 1000)
        #expect(s.requestArrived(at: Self.start) == .admit)
        self.feed(&s, Array(repeating: (100, 1), count: 3))
        #expect(s.requestArrived(at: Self.start) == .shed(reason: .lag))
        #expect(s.inFlight == 1)
        s.requestFinished()
        #expect(s.inFlight == 0)
    }

    /// The controller against a simulated loop (no sockets): requests arrive evenly at `offered`×
    /// the loop's capacity; each loop pass reads what arrived during the previous one, a served
    /// request costs 1 unit and a refusal `refusalCost`; the lag task runs after each pass. The
    /// issue's bar: admitted ≥ 90 % of capacity where refusals are cheap enough to allow it
    /// ((1 − 2r)/(1 − r) at 2×), and the admitted requests' wait a few times the target.
    @Test(
        "Against a simulated loop at 2× and 4× capacity: admits near capacity, waits stay near the target",
        arguments: [
            (offered: 2.0, refusalCost: 0.05, minAdmitted: 0.9, capacity: 1600.0), (4.0, 0.02, 0.88, 1600),
            (1.0, 0.05, 0.93, 1600), (2.0, 0.05, 0.9, 12800), (4.0, 0.02, 0.88, 12800), (1.0, 0.05, 0.93, 12800),
        ])
    func simulatedLoop(offered: Double, refusalCost: Double, minAdmitted: Double, capacity: Double) {
        var s = self.shedder(maxInFlight: 1 << 30, lagMilliseconds: 5)
        let service = 1.0 / capacity  // s per admitted request
        let gap = service / offered
        var now = 0.0
        var nextArrival = 0.0
        var nextProbe = 0.005
        var busySince = 0.0
        var admitted = 0
        var waits: [Double] = []
        let seconds = 3.0
        while now < seconds {
            let passStart = now
            var batch: [Double] = []
            while nextArrival <= now {
                batch.append(nextArrival)
                nextArrival += gap
            }
            if batch.isEmpty { now = min(nextArrival, nextProbe) }
            let workStart = now
            for arrival in batch {
                if s.requestArrived(at: Self.start + .nanoseconds(Int64(now * 1e9))) == .admit {
                    s.requestFinished()
                    now += service
                    admitted += 1
                    if now > 1 { waits.append(passStart - arrival + service) }
                } else {
                    now += service * refusalCost
                }
            }
            s.passEnded()  // the loop runs its tasks after the pass's reads
            busySince += now - workStart
            if now >= nextProbe {
                s.measured(
                    lag: .nanoseconds(Int64((now - nextProbe) * 1e9)),
                    thread: .init(running: .nanoseconds(Int64(busySince * 1e9)), waiting: .zero),
                    at: Self.start + .nanoseconds(Int64(now * 1e9)))
                busySince = 0
                nextProbe = now + 0.005
            }
        }
        let share = Double(admitted) * service / seconds
        waits.sort()
        let p99 = waits[Int(0.99 * Double(waits.count - 1))]
        #expect(share >= minAdmitted * min(1, offered), "admitted \(share) of capacity")
        #expect(p99 <= 0.02, "admitted p99 wait \(p99 * 1000) ms")
    }
}
