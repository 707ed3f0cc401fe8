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

    /// Lag measurements, 5 ms apart → the next request's decision. Shedding needs a standing
    /// backlog: every sample above the threshold for 100 ms (counted from when the first late task
    /// was due); it stops only at or below half the threshold (hysteresis).
    @Test(
        "Lag sheds on a standing backlog and reopens at half the threshold",
        arguments: [
            ([5], LoadShedder.Decision.admit),
            ([25], .admit),  // one late timer: no backlog yet
            ([150], .shed(reason: .lag)),  // one stall as long as the window
            (Array(repeating: 25, count: 15), .admit),  // 70 ms + 25 ms < 100 ms of backlog
            (Array(repeating: 25, count: 16), .shed(reason: .lag)),  // 75 + 25 ≥ 100 ms
            (Array(repeating: 25, count: 10) + [15] + Array(repeating: 25, count: 10), .admit),  // streak broken
            ([150, 15], .shed(reason: .lag)),  // between half and the threshold: still shedding
            ([150, 15, 10], .admit),  // at half: reopened
            ([150, 0], .admit),
            ([20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20], .admit),  // at the threshold: not above it
        ] as [([Int64], LoadShedder.Decision)])
    func lag(samples: [Int64], expected: LoadShedder.Decision) {
        var s = self.shedder()
        for (i, lag) in samples.enumerated() {
            s.lagMeasured(.milliseconds(lag), at: Self.start + .milliseconds(Int64(5 * i)))
        }
        #expect(s.requestArrived() == expected)
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
