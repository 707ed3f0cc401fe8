import Testing

@testable import FleetHTTP2

@Suite("HTTP/2 connection lifecycle state machine")
struct HTTP2ConnectionStateMachineTests {
    @Test("The idle timer starts when the last stream closes and stops when one opens")
    func idleTimer() {
        var machine = HTTP2ConnectionStateMachine(isServer: true)
        #expect(machine.streamOpened() == .cancelIdleTimer)
        #expect(machine.streamOpened() == .none)
        #expect(machine.streamClosed() == .none)
        #expect(machine.streamClosed() == .startIdleTimer)
        #expect(machine.idleTimerFired() == .sendFinalGoAway(thenClose: true))
        #expect(machine.state == .closed)
    }

    @Test("The idle timer does nothing while a stream is open")
    func idleWithStream() {
        var machine = HTTP2ConnectionStateMachine(isServer: true)
        _ = machine.streamOpened()
        #expect(machine.idleTimerFired() == .none)
        #expect(machine.state == .active(openStreams: 1))
    }

    @Test("A server shuts down in two steps and closes when the last stream ends")
    func serverTwoStep() {
        var machine = HTTP2ConnectionStateMachine(isServer: true)
        _ = machine.streamOpened()
        #expect(machine.beginGracefulShutdown() == .sendShutdownNotice)
        #expect(machine.streamOpened() == .none)  // streams may still arrive in the first step
        #expect(machine.shutdownNoticeAcknowledged() == .sendFinalGoAway(thenClose: false))
        #expect(machine.streamClosed() == .none)
        #expect(machine.streamClosed() == .close)
        #expect(machine.state == .closed)
    }

    @Test("A server with no streams closes right after the notice is acknowledged")
    func serverIdleShutdown() {
        var machine = HTTP2ConnectionStateMachine(isServer: true)
        #expect(machine.beginGracefulShutdown() == .sendShutdownNotice)
        #expect(machine.shutdownNoticeAcknowledged() == .sendFinalGoAway(thenClose: true))
    }

    @Test("A client sends one GOAWAY and closes when its streams finish")
    func clientShutdown() {
        var machine = HTTP2ConnectionStateMachine(isServer: false)
        _ = machine.streamOpened()
        #expect(machine.beginGracefulShutdown() == .sendFinalGoAway(thenClose: false))
        #expect(machine.beginGracefulShutdown() == .none)
        #expect(machine.streamClosed() == .close)
    }

    @Test("The grace timer closes whatever is left")
    func graceTimer() {
        var machine = HTTP2ConnectionStateMachine(isServer: true)
        _ = machine.streamOpened()
        _ = machine.beginGracefulShutdown()
        #expect(machine.graceTimerFired() == .close)
        #expect(machine.graceTimerFired() == .none)
    }
}
