import FleetHTTP2
import NIOCore
import Testing

/// The abuse heuristics driven with plain values and an injected clock: each row replays events at
/// given times and lists the verdict every one of them must get.
@Suite("DOS heuristics, with an injected clock")
struct DOSHeuristicsTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let configuration = HTTP2Configuration(
        maxOversizedHeaderListsPerMinute: 4, maxResetsPerSecond: 2, maxContinuationFrames: 2, maxPingsPerSecond: 1,
        maxSettingsPerSecond: 1)

    /// A frame event, at milliseconds after ``start`` where time counts.
    enum Event: Sendable, CustomTestStringConvertible {
        case reset(ms: Int64)
        case ping(ms: Int64)
        case settings(ms: Int64)
        case oversizedHeaderList(ms: Int64)
        case headers
        case continuation

        var testDescription: String { "\(self)" }

        func apply(to dos: inout DOSHeuristics) -> DOSHeuristics.Verdict {
            let at = { (ms: Int64) in DOSHeuristicsTests.start + .milliseconds(ms) }
            switch self {
            case .reset(let ms): return dos.receivedReset(at: at(ms))
            case .ping(let ms): return dos.receivedPing(at: at(ms))
            case .settings(let ms): return dos.receivedSettings(at: at(ms))
            case .oversizedHeaderList(let ms): return dos.receivedOversizedHeaderList(at: at(ms))
            case .headers:
                dos.receivedHeadersFrame()
                return .permitted
            case .continuation: return dos.receivedContinuationFrame()
            }
        }
    }

    static let ok = DOSHeuristics.Verdict.permitted
    static let calm = DOSHeuristics.Verdict.enhanceYourCalm

    static let table: [(String, [(Event, DOSHeuristics.Verdict)])] = [
        (
            "two resets a second pass, the third in the same second does not",
            [(.reset(ms: 0), ok), (.reset(ms: 500), ok), (.reset(ms: 900), calm)]
        ),
        (
            "the reset window starts again with the first reset after it",
            [(.reset(ms: 0), ok), (.reset(ms: 900), ok), (.reset(ms: 1_000), ok), (.reset(ms: 1_100), ok)]
        ),
        (
            "PINGs and SETTINGS have windows of their own",
            [
                (.reset(ms: 0), ok), (.ping(ms: 0), ok), (.settings(ms: 0), ok), (.reset(ms: 1), ok),
                (.ping(ms: 999), calm), (.settings(ms: 1_000), ok), (.settings(ms: 1_999), calm),
            ]
        ),
        (
            "the fifth oversized header list within a minute is too many; a new minute starts over",
            [
                (.oversizedHeaderList(ms: 0), ok), (.oversizedHeaderList(ms: 1_000), ok),
                (.oversizedHeaderList(ms: 2_000), ok), (.oversizedHeaderList(ms: 3_000), ok),
                (.oversizedHeaderList(ms: 10_000), calm), (.oversizedHeaderList(ms: 71_000), ok),
            ]
        ),
        (
            "two CONTINUATION frames after a HEADERS frame pass, the third does not",
            [(.headers, ok), (.continuation, ok), (.continuation, ok), (.continuation, calm)]
        ),
        (
            "each HEADERS frame starts the CONTINUATION count again",
            [
                (.headers, ok), (.continuation, ok), (.continuation, ok), (.headers, ok), (.continuation, ok),
                (.continuation, ok),
            ]
        ),
    ]

    @Test("Each event gets its verdict", arguments: Self.table)
    func verdicts(name: String, events: [(Event, DOSHeuristics.Verdict)]) {
        var dos = DOSHeuristics(configuration: Self.configuration)
        for (event, verdict) in events {
            #expect(event.apply(to: &dos) == verdict, "\(name): \(event)")
        }
    }
}
