import NIOCore
import Testing

@testable import FleetGate

@Suite("LoadShedder: an event loop sheds instead of queueing")
struct LoadShedderTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func shedder(maxInFlight: Int = 3, lagMilliseconds: Int64 = 20) -> LoadShedder {
        LoadShedder(configuration: .init(maxInFlight: maxInFlight, lagThreshold: .milliseconds(lagMilliseconds)))
    }

    @Test("Admits up to maxInFlight, then sheds with reason in_flight until one finishes")
    func inFlightBound() {
        var s = self.shedder()
        #expect(s.requestArrived() == .admit)
        #expect(s.requestArrived() == .admit)
        #expect(s.requestArrived() == .admit)
        #expect(s.requestArrived() == .shed(reason: .inFlight))
        #expect(s.inFlight == 3, "a shed request is not counted")
        s.requestFinished()
        #expect(s.requestArrived() == .admit)
    }

    /// Lag measurements, 5 ms apart → how many of the next 20 requests are shed. Shedding needs a
    /// standing backlog: every sample above the threshold for 100 ms (counted from when the first
    /// late task was due); it starts at half, grows with each sample above the threshold (by 0.05 ×
    /// lag ÷ threshold, at most 4×), holds between half the threshold and the threshold, and decays
    /// by 0.01 per sample at or under half of it.
    @Test(
        "Lag sheds a share that starts on a standing backlog, grows with the lag and decays under half the threshold",
        arguments: [
            ([5], 0),
            ([25], 0),  // one late timer: no backlog yet
            ([150], 10),  // one stall as long as the window: half shed
            (Array(repeating: 25, count: 15), 0),  // 70 ms + 25 ms < 100 ms of backlog
            (Array(repeating: 25, count: 16), 10),  // 75 + 25 ≥ 100 ms
            (Array(repeating: 25, count: 10) + [15] + Array(repeating: 25, count: 10), 0),  // streak broken
            ([150, 15], 10),  // between half and the threshold: holds
            ([150, 100, 100], 18),  // 0.5 + 2 × 0.05 × 4 = 0.9
            ([150] + Array(repeating: 100, count: 20), 19),  // at most 0.95
            ([150] + Array(repeating: 10, count: 10), 8),  // 0.5 − 10 × 0.01 = 0.4
            ([150] + Array(repeating: 10, count: 50), 0),  // decayed to nothing
            (Array(repeating: 20, count: 22), 0),  // at the threshold: not above it
        ] as [([Int64], Int)])
    func lag(samples: [Int64], shed expected: Int) {
        var s = self.shedder(maxInFlight: 100)
        for (i, lag) in samples.enumerated() {
            s.lagMeasured(.milliseconds(lag), at: Self.start + .milliseconds(Int64(5 * i)))
        }
        let decisions = (0..<20).map { _ in s.requestArrived() }
        #expect(decisions.filter { $0 == .shed(reason: .lag) }.count == expected)
        if expected >= 10 { #expect(decisions.first == .shed(reason: .lag), "the first request after onset is shed") }
    }

    /// Utilization windows of 50 ms (ticks of 10 ms: `busy` of them) → the share shed.
    func afterWindows(_ busyPerWindow: [Int64], from start: LoadShedder? = nil) -> LoadShedder {
        var s = start ?? self.shedder(maxInFlight: 10_000)
        for busy in busyPerWindow {
            for _ in 0..<5 {
                s.tickMeasured(busy: .microseconds(busy * 100), slept: .microseconds((100 - busy) * 100))
            }
        }
        return s
    }

    @Test("Utilization: two saturated windows start shedding, each more adds, the relaxed band holds")
    func utilization() {
        #expect(self.afterWindows([100]).dropFraction == 0, "one saturated window is not a trend")
        #expect(self.afterWindows([100, 100]).dropFraction == 0.1)
        #expect(self.afterWindows([100, 97, 100]).dropFraction == 0, "the streak was broken")
        #expect(abs(self.afterWindows([100, 100, 99, 98]).dropFraction - 0.2) < 1e-9)
        #expect(abs(self.afterWindows([100, 100, 95, 91]).dropFraction - 0.1) < 1e-9, "between 90 and 98 %: holds")
        // Under 90 %, it decays by 0.01 plus half the distance under: an idle loop reopens at once.
        #expect(abs(self.afterWindows([100, 100, 100, 100, 88]).dropFraction - (0.2 - 0.02)) < 1e-9)
        #expect(self.afterWindows([100, 100, 100, 100, 20]).dropFraction == 0)
    }

    @Test("With utilization reported, a loop on time does not reopen while it is still saturated")
    func lagDoesNotDecayUnderUtilization() {
        var s = self.afterWindows([100, 100])
        for i in 0..<50 { s.lagMeasured(.milliseconds(1), at: Self.start + .milliseconds(Int64(5 * i))) }
        #expect(s.dropFraction == 0.1)
        s = self.afterWindows([100], from: s)
        #expect(abs(s.dropFraction - 0.15) < 1e-9)
    }

    @Test("At twice capacity the share settles where the loop just keeps up: a short backlog, most of capacity admitted")
    func settles() {
        // A toy loop: 10 ms ticks; 200 requests offered per tick where it can serve 100 (0.1 ms each;
        // a refusal costs 0.01 ms). Work beyond a tick waits (the sockets' backlog) and makes the
        // loop busy the whole next tick; the loop sleeps only when the backlog is gone.
        var s = self.shedder(maxInFlight: 10_000)
        var backlog = 0.0  // ms of work waiting
        var admittedTail = 0
        var backlogs: [Double] = []
        for tick in 0..<1_000 {
            var admitted = 0
            for _ in 0..<200 where s.requestArrived() == .admit {
                admitted += 1
                s.requestFinished()
            }
            let work = backlog + Double(admitted) * 0.1 + Double(200 - admitted) * 0.01
            let busy = min(work, 10)
            backlog = work - busy
            s.tickMeasured(busy: .nanoseconds(Int64(busy * 1e6)), slept: .nanoseconds(Int64((10 - busy) * 1e6)))
            if tick >= 500 {
                admittedTail += admitted
                backlogs.append(backlog)
            }
        }
        let perTick = Double(admittedTail) / 500
        // The most a loop can admit while refusing the rest and keeping up: (10 − 2) ÷ 0.09 ≈ 89.
        #expect(perTick > 75 && perTick < 90, "admitted \(perTick) per tick of 100")
        #expect(backlogs.max()! < 10, "the backlog stays under one tick: \(backlogs.max()!) ms")
    }

    @Test("A zero lag threshold turns lag shedding off, even mid-shedding (a reload)")
    func lagOff() {
        var s = self.shedder()
        s.lagMeasured(.milliseconds(500), at: Self.start + .seconds(1))
        #expect(s.requestArrived() == .shed(reason: .lag))
        s.configuration.lagThreshold = .zero
        s.lagMeasured(.milliseconds(500), at: Self.start + .milliseconds(5))
        #expect(s.requestArrived() == .admit)
    }

    @Test("Lag shedding counts nothing in flight, and in-flight work still finishes")
    func shedKeepsCount() {
        var s = self.shedder()
        #expect(s.requestArrived() == .admit)
        s.lagMeasured(.milliseconds(100), at: Self.start + .seconds(1))
        #expect(s.requestArrived() == .shed(reason: .lag))
        #expect(s.inFlight == 1)
        s.requestFinished()
        #expect(s.inFlight == 0)
        #expect(s.laggingSince == Self.start + .milliseconds(900))
    }
}
