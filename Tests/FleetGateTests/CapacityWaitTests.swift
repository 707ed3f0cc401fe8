import NIOCore
import Testing

@testable import FleetGate

@Suite("Capacity wait: an admitted request waits for a busy zone, within its limit")
struct CapacityWaitTests {
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("A lost stream's continuation, or a departing car's, asks again every 100 ms until the limit, then gives up")
    func waitsThenGivesUp() {
        for reason in [DispatchStateMachine.OpenReason.failover, .departure] {
            var wait = CapacityWait(limit: .milliseconds(250))
            #expect(wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0) == .milliseconds(100))
            #expect(
                wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0 + .milliseconds(100)) == .milliseconds(100)
            )
            // The last delay ends at the limit, not past it.
            #expect(
                wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0 + .milliseconds(200)) == .milliseconds(50))
            #expect(wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0 + .milliseconds(250)) == nil)
            // Given up: a later refusal is a new wait (not for a departure: departureGivesUpOnce).
            #expect(
                wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0 + .seconds(9))
                    == (reason == .failover ? .milliseconds(100) : nil))
        }
    }

    @Test(
        "Nothing else waits (the client heard nothing, or a hedge); nor a zone with nothing busy, nor a zero limit")
    func neverWaits() {
        var wait = CapacityWait(limit: .seconds(5))
        for reason in [DispatchStateMachine.OpenReason.initial, .retry, .hedge, .restart] {
            #expect(wait.retryDelay(reason: reason, zoneBusy: true, now: self.t0) == nil)
        }
        #expect(wait.retryDelay(reason: .failover, zoneBusy: false, now: self.t0) == nil)
        var off = CapacityWait(limit: .zero)
        #expect(off.retryDelay(reason: .failover, zoneBusy: true, now: self.t0) == nil)
    }

    @Test("A departure that gave up once does not wait again in that request; a lost stream still does")
    func departureGivesUpOnce() {
        var wait = CapacityWait(limit: .milliseconds(200))
        #expect(wait.retryDelay(reason: .departure, zoneBusy: true, now: self.t0) == .milliseconds(100))
        #expect(wait.retryDelay(reason: .departure, zoneBusy: true, now: self.t0 + .milliseconds(200)) == nil)
        // The car announces again with its next state line: no second wait for new requests to yield to.
        #expect(wait.retryDelay(reason: .departure, zoneBusy: true, now: self.t0 + .seconds(1)) == nil)
        #expect(wait.retryDelay(reason: .failover, zoneBusy: true, now: self.t0 + .seconds(2)) == .milliseconds(100))
    }

    @Test("A candidate found ends the wait; the next one starts its own clock")
    func foundResets() {
        var wait = CapacityWait(limit: .seconds(1))
        #expect(wait.retryDelay(reason: .failover, zoneBusy: true, now: self.t0) != nil)
        wait.found()
        #expect(wait.since == nil)
        #expect(wait.retryDelay(reason: .failover, zoneBusy: true, now: self.t0 + .seconds(3)) == .milliseconds(100))
        #expect(wait.since == self.t0 + .seconds(3))
    }

    @Test("Waiters are counted by zone and model with the window each needs; the smallest is what new work yields")
    func waitersByWindow() {
        let waiters = CapacityWaiters()
        #expect(
            waiters.smallestNeed(zone: "eu", model: "m") == nil && waiters.smallestNeed(zone: "eu", model: "m") == nil)
        waiters.begin(zone: "eu", model: "m", needing: 20_000)
        waiters.begin(zone: "eu", model: "m", needing: 9_000)
        waiters.begin(zone: "us", model: "m")
        #expect(waiters.smallestNeed(zone: "eu", model: "m") == 9_000 && waiters.count == 3)
        #expect(waiters.smallestNeed(zone: "us", model: "m") == 0)
        #expect(waiters.smallestNeed(zone: "eu", model: "other") == nil)
        waiters.end(zone: "eu", model: "m", needing: 9_000)
        #expect(waiters.smallestNeed(zone: "eu", model: "m") == 20_000)
        waiters.end(zone: "eu", model: "m", needing: 20_000)
        waiters.end(zone: "us", model: "m")
        #expect(
            waiters.smallestNeed(zone: "eu", model: "m") == nil && waiters.smallestNeed(zone: "us", model: "m") == nil)
        #expect(waiters.count == 0)
    }
}
