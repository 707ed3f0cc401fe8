import FleetGate
import NIOCore
import Testing

@Suite("AttemptDeadlines")
struct AttemptDeadlinesTests {
    typealias Progress = AttemptDeadlines.Progress
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func at(_ milliseconds: Int64) -> NIODeadline { Self.start + .milliseconds(milliseconds) }

    /// First token 15 s, total 60 s, inter-token 2 s, hedge at 250 ms unless `hedge` is nil.
    static func deadlines(hedge: Int64? = 250) -> AttemptDeadlines {
        AttemptDeadlines(
            start: Self.start, firstTokenTimeout: .seconds(15), totalTimeout: .seconds(60),
            interTokenLimit: .seconds(2), hedgeDelay: hedge.map { .milliseconds($0) })
    }

    @Test("Before the first token the timer is armed for the hedge, then the first-token deadline")
    func beforeFirstToken() {
        var deadlines = Self.deadlines()
        let waiting = Progress()
        #expect(deadlines.next(waiting) == Self.at(250))
        #expect(deadlines.due(at: Self.at(249), waiting) == [])
        #expect(deadlines.due(at: Self.at(250), waiting) == [.hedge])
        // A hedge is reported once.
        #expect(deadlines.next(waiting) == Self.at(15_000))
        #expect(deadlines.due(at: Self.at(14_999), waiting) == [])
        #expect(deadlines.due(at: Self.at(15_000), waiting) == [.firstToken])
        #expect(Self.deadlines(hedge: nil).next(waiting) == Self.at(15_000))
    }

    @Test("Once tokens flow, the hedge and first-token deadlines are gone and the watchdog follows the last token")
    func watchdog() {
        var deadlines = Self.deadlines()
        var progress = Progress(firstTokenAt: Self.at(100), lastTokenAt: Self.at(100))
        #expect(deadlines.next(progress) == Self.at(2_100))
        // The timer armed for the hedge fires after the first token: nothing is due.
        #expect(deadlines.due(at: Self.at(250), progress) == [])
        #expect(deadlines.hedge == nil)
        progress.lastTokenAt = Self.at(1_500)
        #expect(deadlines.due(at: Self.at(2_100), progress) == [])
        #expect(deadlines.next(progress) == Self.at(3_500))
        #expect(deadlines.due(at: Self.at(3_500), progress) == [.interToken])
    }

    @Test("A client that holds the stream back restarts the watchdog instead of failing the upstream")
    func heldBack() {
        var deadlines = Self.deadlines()
        var progress = Progress(firstTokenAt: Self.at(100), lastTokenAt: Self.at(100), heldBack: true)
        #expect(deadlines.due(at: Self.at(2_100), progress) == [])
        #expect(deadlines.next(progress) == Self.at(4_100))
        progress.heldBack = false
        #expect(deadlines.due(at: Self.at(4_000), progress) == [])
        #expect(deadlines.due(at: Self.at(4_100), progress) == [.interToken])
        // A token after the restart counts from itself.
        progress.lastTokenAt = Self.at(5_000)
        #expect(deadlines.next(progress) == Self.at(7_000))
    }

    @Test("The total deadline bounds every phase and comes first")
    func total() {
        var deadlines = Self.deadlines()
        #expect(deadlines.due(at: Self.at(60_000), Progress()) == [.total, .firstToken, .hedge])
        var streaming = Self.deadlines()
        let progress = Progress(firstTokenAt: Self.at(100), lastTokenAt: Self.at(59_000))
        #expect(streaming.next(progress) == Self.at(60_000))
        #expect(streaming.due(at: Self.at(60_000), progress) == [.total])
        let long = AttemptDeadlines(
            start: Self.start, firstTokenTimeout: .seconds(15), totalTimeout: .seconds(1), interTokenLimit: .seconds(2),
            hedgeDelay: .seconds(5))
        #expect(long.next(Progress()) == Self.at(1_000))
    }

    @Test(
        "A whole answer's deadline: the first-token timeout plus the inter-token limit per max_tokens, within the total"
    )
    func wholeAnswer() {
        func timeout(_ maxTokens: Int?, total: TimeAmount = .minutes(10)) -> TimeAmount {
            AttemptDeadlines.wholeAnswerTimeout(
                firstTokenTimeout: .seconds(15), interTokenLimit: .seconds(2), maxTokens: maxTokens, total: total)
        }
        #expect(timeout(32) == .seconds(15 + 64))
        #expect(timeout(0) == .seconds(17), "at least one token")
        #expect(timeout(4_096) == .minutes(10), "past the total: the total")
        #expect(timeout(nil) == .minutes(10), "no max_tokens: the total")
        #expect(timeout(Int.max) == .minutes(10), "an overflow: the total")
        #expect(timeout(32, total: .seconds(30)) == .seconds(30))
    }

    @Test("The first-token timeout grows to 3× a long predicted TTFT, within the total; never below the configured one")
    func firstTokenFromPrediction() {
        func timeout(_ predicted: Double?) -> TimeAmount {
            AttemptDeadlines.firstTokenTimeout(
                configured: .seconds(15), predictedMilliseconds: predicted, total: .seconds(600))
        }
        #expect(timeout(nil) == .seconds(15))
        #expect(timeout(200) == .seconds(15))  // a usual prompt: the configured timeout
        #expect(timeout(30_000) == .seconds(90))  // a 30 s prefill gets 90 s
        #expect(timeout(400_000) == .seconds(600))  // never past the attempt's total
        #expect(timeout(.infinity) == .seconds(15) && timeout(-1) == .seconds(15))
    }
}
