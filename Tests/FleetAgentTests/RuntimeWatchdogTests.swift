import FleetAgent
import NIOCore
import Testing

/// The openai-local job's one timer (issue #19): which limit passed, or when to look again — no sockets.
@Suite("Runtime watchdog")
struct RuntimeWatchdogTests {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private var watchdog: RuntimeWatchdog {
        RuntimeWatchdog(
            firstTokenTimeout: .seconds(60), readTimeout: .seconds(90), jobTimeout: .seconds(600), startedAt: self.start)
    }

    @Test("Before the first token the first-token limit is the next deadline and passes first", .timeLimit(.minutes(1)))
    func firstToken() {
        #expect(self.watchdog.check(now: self.start, firstTokenAt: nil, lastReadAt: nil) == .wait(until: self.start + .seconds(60)))
        // The runtime answered its head and a role chunk, but no token: still the first-token limit.
        let read = self.start + .seconds(30)
        #expect(
            self.watchdog.check(now: self.start + .seconds(60), firstTokenAt: nil, lastReadAt: read)
                == .expired("no token from the inference runtime within 60 s"))
    }

    @Test("After the first token a silence fails the job; every read moves the deadline on", .timeLimit(.minutes(1)))
    func silence() {
        let first = self.start + .seconds(1)
        let read = self.start + .seconds(50)
        // The timer fires at the old deadline: progress since re-arms it for the last read + 90 s.
        #expect(
            self.watchdog.check(now: self.start + .seconds(60), firstTokenAt: first, lastReadAt: read)
                == .wait(until: read + .seconds(90)))
        #expect(
            self.watchdog.check(now: read + .seconds(90), firstTokenAt: first, lastReadAt: read)
                == .expired("no data from the inference runtime for 90 s"))
    }

    @Test("A job that keeps streaming still ends at the job limit", .timeLimit(.minutes(1)))
    func wholeJob() {
        let first = self.start + .seconds(1)
        let now = self.start + .seconds(550)
        #expect(
            self.watchdog.check(now: now, firstTokenAt: first, lastReadAt: now) == .wait(until: self.start + .seconds(600)))
        #expect(
            self.watchdog.check(now: self.start + .seconds(600), firstTokenAt: first, lastReadAt: now)
                == .expired("the job ran longer than 600 s"))
    }
}
