import FleetAgent
import NIOCore
import Testing

@Suite("JobFailureLog")
struct JobFailureLogTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    /// helper-130, helper-131: a runtime killed, hung or answering 500 left nothing in the agent's log.
    @Test("The first failure is a line; then one a minute counting them by code; a served job ends the run")
    func runOfFailures() {
        var log = JobFailureLog()
        #expect(log.served() == nil)
        #expect(log.failed(code: "upstream_status_500", at: self.t0) == .firstFailure(code: "upstream_status_500"))
        // A thousand more within the minute: silent.
        for i in 1...1_000 {
            let code = i % 10 == 0 ? "upstream_timeout" : "upstream_status_500"
            #expect(log.failed(code: code, at: self.t0 + .milliseconds(Int64(i * 50))) == nil)
        }
        #expect(
            log.failed(code: "upstream_unreachable", at: self.t0 + .seconds(60))
                == .stillFailing(
                    counts: ["upstream_status_500": 900, "upstream_timeout": 100, "upstream_unreachable": 1],
                    inARow: 1_002))
        #expect(log.failed(code: "upstream_unreachable", at: self.t0 + .seconds(61)) == nil)
        #expect(log.served() == .recovered(failures: 1_003))
        #expect(log.served() == nil)
        // The next run starts with its own first line.
        #expect(
            log.failed(code: "upstream_timeout", at: self.t0 + .seconds(62)) == .firstFailure(code: "upstream_timeout"))
    }
}
