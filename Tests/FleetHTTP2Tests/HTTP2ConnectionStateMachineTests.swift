import HTTPTypes
import NIOCore
import Testing

@testable import FleetHTTP2

/// The connection-management machine driven with plain values and an injected clock: every row is
/// a state (built by replaying events), one event, the action it must answer and the state after.
@Suite("HTTP/2 connection state machine: state × event")
struct HTTP2ConnectionStateMachineTests {
    typealias Machine = HTTP2ConnectionStateMachine
    typealias Action = Machine.Action

    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let configuration = HTTP2Configuration(
        idleTimeout: .seconds(5), handshakeTimeout: .seconds(10), stallTimeout: .seconds(2),
        gracefulShutdownTimeout: .seconds(30), keepaliveInterval: .seconds(1), keepaliveTimeout: .seconds(3))

    /// An event, at a time after ``t0``.
    enum Event: Sendable, CustomTestStringConvertible {
        case activated
        case streamOpened
        case streamClosed
        case shutdown
        case settingsAck
        case pingAck(UInt64, after: TimeAmount = .zero)
        case ping
        case timer(Machine.Timer, after: TimeAmount = .zero)

        var testDescription: String { "\(self)" }

        func apply(to machine: inout Machine) -> Action {
            switch self {
            case .activated: machine.connectionActivated()
            case .streamOpened: machine.streamOpened()
            case .streamClosed: machine.streamClosed()
            case .shutdown: machine.beginGracefulShutdown(at: HTTP2ConnectionStateMachineTests.t0)
            case .settingsAck: machine.receivedSettingsAck()
            case .pingAck(let id, let after):
                machine.receivedPingAck(opaque: id, at: HTTP2ConnectionStateMachineTests.t0 + after)
            case .ping: machine.pingRequested(at: HTTP2ConnectionStateMachineTests.t0)
            case .timer(let timer, let after):
                machine.timerFired(timer, at: HTTP2ConnectionStateMachineTests.t0 + after)
            }
        }
    }

    /// A starting state, reached by replaying events on a fresh machine.
    enum Start: String, Sendable, CustomTestStringConvertible {
        case idle, busy, handshaken, noticeSent, noticeSentBusy, finalSentBusy, closed
        case clientIdle, clientBusy, clientFinalSent
        case keepaliveSent, twoKeepalivesSent, callerPingSent, sixteenPingsSent

        var testDescription: String { self.rawValue }

        func machine() -> Machine {
            let isServer = !self.rawValue.hasPrefix("client")
            var machine = Machine(isServer: isServer, configuration: HTTP2ConnectionStateMachineTests.configuration)
            let events: [Event] =
                switch self {
                case .idle, .clientIdle: []
                case .busy, .clientBusy: [.streamOpened]
                case .handshaken: [.settingsAck]
                case .noticeSent: [.shutdown]
                case .noticeSentBusy: [.streamOpened, .shutdown]
                case .finalSentBusy: [.streamOpened, .shutdown, .pingAck(1)]
                case .closed: [.shutdown, .pingAck(1)]
                case .clientFinalSent: [.streamOpened, .shutdown]
                case .keepaliveSent: [.timer(.keepalive)]
                case .twoKeepalivesSent: [.timer(.keepalive), .timer(.keepalive, after: .seconds(1))]
                case .callerPingSent: [.ping]
                case .sixteenPingsSent: Array(repeating: .ping, count: 16)
                }
            for event in events { _ = event.apply(to: &machine) }
            return machine
        }
    }

    static func ping(_ id: UInt64, evicting evicted: UInt64? = nil) -> Machine.PingToSend {
        Machine.PingToSend(id: id, evicted: evicted)
    }

    static let table: [(Start, Event, Action, Machine.State)] = [
        // Activation starts every clock; the stall check runs at a quarter of the stall timeout.
        (
            .idle, .activated,
            .startTimers(
                handshake: .seconds(10), idle: .seconds(5), keepalive: .seconds(1),
                stallCheck: .milliseconds(500)), .active(openStreams: 0)
        ),
        // Handshake (RFC 9113 §6.5.3).
        (.idle, .timer(.handshake), .terminate(.settingsTimeout, thenClose: false), .active(openStreams: 0)),
        (.idle, .settingsAck, .cancelTimer(.handshake), .active(openStreams: 0)),
        (.handshaken, .settingsAck, .none, .active(openStreams: 0)),
        (.handshaken, .timer(.handshake), .none, .active(openStreams: 0)),
        // Streams and the idle timer.
        (.idle, .streamOpened, .cancelTimer(.idle), .active(openStreams: 1)),
        (.idle, .streamClosed, .startTimer(.idle, in: .seconds(5)), .active(openStreams: 0)),
        (.idle, .timer(.idle), .sendFinalGoAway(thenClose: true, grace: nil), .closed),
        (.busy, .streamOpened, .none, .active(openStreams: 2)),
        (.busy, .streamClosed, .startTimer(.idle, in: .seconds(5)), .active(openStreams: 0)),
        (.busy, .timer(.idle), .none, .active(openStreams: 1)),
        // A server's two-step graceful shutdown (RFC 9113 §6.8).
        (
            .idle, .shutdown, .sendShutdownNotice(ping(1), grace: .seconds(30)),
            .quiescing(openStreams: 0, finalGoAwaySent: false)
        ),
        (
            .busy, .shutdown, .sendShutdownNotice(ping(1), grace: .seconds(30)),
            .quiescing(openStreams: 1, finalGoAwaySent: false)
        ),
        (.noticeSent, .pingAck(1), .sendFinalGoAway(thenClose: true, grace: nil), .closed),
        (.noticeSent, .streamOpened, .none, .quiescing(openStreams: 1, finalGoAwaySent: false)),
        (.noticeSent, .shutdown, .none, .quiescing(openStreams: 0, finalGoAwaySent: false)),
        (.noticeSent, .timer(.idle), .none, .quiescing(openStreams: 0, finalGoAwaySent: false)),
        (.noticeSent, .timer(.grace), .close, .closed),
        (
            .noticeSentBusy, .pingAck(1), .sendFinalGoAway(thenClose: false, grace: nil),
            .quiescing(openStreams: 1, finalGoAwaySent: true)
        ),
        (.noticeSentBusy, .pingAck(2), .none, .quiescing(openStreams: 1, finalGoAwaySent: false)),
        (.noticeSentBusy, .streamClosed, .none, .quiescing(openStreams: 0, finalGoAwaySent: false)),
        (.finalSentBusy, .streamClosed, .close, .closed),
        (.finalSentBusy, .streamOpened, .none, .quiescing(openStreams: 2, finalGoAwaySent: true)),
        (.finalSentBusy, .pingAck(1), .none, .quiescing(openStreams: 1, finalGoAwaySent: true)),
        (.finalSentBusy, .timer(.grace), .close, .closed),
        (.closed, .streamOpened, .none, .closed),
        (.closed, .streamClosed, .none, .closed),
        (.closed, .shutdown, .none, .closed),
        (.closed, .timer(.idle), .none, .closed),
        (.closed, .timer(.grace), .none, .closed),
        // A client sends one GOAWAY.
        (.clientIdle, .shutdown, .sendFinalGoAway(thenClose: true, grace: nil), .closed),
        (
            .clientBusy, .shutdown, .sendFinalGoAway(thenClose: false, grace: .seconds(30)),
            .quiescing(openStreams: 1, finalGoAwaySent: true)
        ),
        (.clientFinalSent, .shutdown, .none, .quiescing(openStreams: 1, finalGoAwaySent: true)),
        (.clientFinalSent, .streamClosed, .close, .closed),
        // Keepalive: the timeout runs from the oldest unanswered keepalive PING.
        (
            .idle, .timer(.keepalive), .sendKeepalivePing(ping(1), timeout: .seconds(3), next: .seconds(1)),
            .active(openStreams: 0)
        ),
        (
            .keepaliveSent, .timer(.keepalive, after: .seconds(1)),
            .sendKeepalivePing(ping(2), timeout: nil, next: .seconds(1)), .active(openStreams: 0)
        ),
        (
            .keepaliveSent, .pingAck(1, after: .milliseconds(7)), .cancelTimer(.keepaliveTimeout),
            .active(openStreams: 0)
        ),
        (
            .keepaliveSent, .timer(.keepaliveTimeout, after: .seconds(3)), .terminate(.noError, thenClose: true),
            .active(openStreams: 0)
        ),
        (
            .twoKeepalivesSent, .pingAck(1, after: .milliseconds(1_500)),
            .startTimer(.keepaliveTimeout, in: .milliseconds(2_500)), .active(openStreams: 0)
        ),
        (
            .twoKeepalivesSent, .timer(.keepaliveTimeout, after: .seconds(3)), .terminate(.noError, thenClose: true),
            .active(openStreams: 0)
        ),
        (.idle, .timer(.keepaliveTimeout), .none, .active(openStreams: 0)),
        // Callers' PINGs (RFC 9113 §6.7): at most 16 wait; the oldest waiter is told it went unanswered.
        (.idle, .ping, .sendPing(ping(1)), .active(openStreams: 0)),
        (
            .callerPingSent, .pingAck(1, after: .milliseconds(7)), .completePing(id: 1, rtt: .milliseconds(7)),
            .active(openStreams: 0)
        ),
        (.callerPingSent, .pingAck(9), .none, .active(openStreams: 0)),
        (.sixteenPingsSent, .ping, .sendPing(ping(17, evicting: 1)), .active(openStreams: 0)),
        (.noticeSent, .ping, .sendPing(ping(2)), .quiescing(openStreams: 0, finalGoAwaySent: false)),
        // Stall detection runs on its own clock.
        (
            .idle, .timer(.stallCheck, after: .seconds(4)),
            .resetStalledStreams(at: t0 + .seconds(4), next: .milliseconds(500)), .active(openStreams: 0)
        ),
    ]

    @Test("Each state answers each event with one action", arguments: Self.table)
    func transition(start: Start, event: Event, expected: Action, after: Machine.State) {
        var machine = start.machine()
        #expect(event.apply(to: &machine) == expected)
        #expect(machine.state == after)
    }

    @Test("A PING's round trip is the last RTT; the table forgets what was still out when the connection closes")
    func roundTripAndClose() {
        var machine = Start.callerPingSent.machine()
        _ = machine.pingRequested(at: Self.t0 + .milliseconds(1))
        _ = machine.receivedPingAck(opaque: 1, at: Self.t0 + .milliseconds(7))
        #expect(machine.lastRTT == .milliseconds(7))
        #expect(machine.outstandingPings.map(\.id) == [2])
        machine.connectionClosed()
        #expect(machine.state == .closed && machine.outstandingPings.isEmpty)
        #expect(machine.receivedPingAck(opaque: 2, at: Self.t0 + .milliseconds(9)) == .none)
    }

    @Test(
        "A stream has stalled when output waits and has not moved for longer than the stall timeout",
        arguments: [
            (0, .seconds(10), false), (1, .seconds(2), false), (1, .milliseconds(2_001), true),
            (64 * 1024, .seconds(60), true),
        ] as [(Int, TimeAmount, Bool)])
    func stalled(buffered: Int, sinceProgress: TimeAmount, stalled: Bool) {
        let machine = Start.idle.machine()
        let now = Self.t0 + .seconds(100)
        #expect(
            machine.isStalled(bufferedOutboundBytes: buffered, lastProgress: now - sinceProgress, at: now) == stalled)
        let noStallTimeout = Machine(isServer: true, configuration: HTTP2Configuration(stallTimeout: nil))
        #expect(!noStallTimeout.isStalled(bufferedOutboundBytes: buffered, lastProgress: .distantPast, at: now))
    }

    @Test("Without an idle timeout or keepalive, neither timer is ever asked for")
    func timersOff() {
        var machine = Machine(
            isServer: true, configuration: HTTP2Configuration(idleTimeout: nil, stallTimeout: nil))
        #expect(
            machine.connectionActivated()
                == .startTimers(handshake: .seconds(10), idle: nil, keepalive: nil, stallCheck: nil))
        #expect(machine.streamOpened() == .none)
        #expect(machine.streamClosed() == .none)
        #expect(machine.timerFired(.keepalive, at: Self.t0) == .none)
        #expect(machine.timerFired(.stallCheck, at: Self.t0) == .none)
    }
}
