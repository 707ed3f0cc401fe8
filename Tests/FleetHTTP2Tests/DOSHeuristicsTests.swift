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
        maxSettingsPerSecond: 1, maxEmptyDataFramesPerSecond: 2, maxWindowUpdatesPerSecond: 3, maxPrioritiesPerSecond: 1
    )

    /// A frame event, at milliseconds after ``start`` where time counts.
    enum Event: Sendable, CustomTestStringConvertible {
        case reset(ms: Int64)
        case ping(ms: Int64)
        case settings(ms: Int64)
        case oversizedHeaderList(ms: Int64)
        case emptyData(ms: Int64)
        case windowUpdate(ms: Int64)
        case priority(ms: Int64)
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
            case .emptyData(let ms): return dos.receivedEmptyData(at: at(ms))
            case .windowUpdate(let ms): return dos.receivedWindowUpdate(at: at(ms))
            case .priority(let ms): return dos.receivedPriority(at: at(ms))
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
            "helper-85: empty DATA, WINDOW_UPDATE and PRIORITY frames each have a budget a second of their own",
            [
                (.emptyData(ms: 0), ok), (.windowUpdate(ms: 0), ok), (.priority(ms: 0), ok), (.emptyData(ms: 10), ok),
                (.windowUpdate(ms: 10), ok), (.windowUpdate(ms: 20), ok), (.emptyData(ms: 30), calm),
                (.windowUpdate(ms: 40), calm), (.priority(ms: 50), calm), (.priority(ms: 1_050), ok),
                (.emptyData(ms: 1_100), ok),
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
