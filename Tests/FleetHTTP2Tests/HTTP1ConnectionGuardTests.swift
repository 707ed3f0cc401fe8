import FleetHTTP2
import Testing

@Suite("HTTP/1.1 connection guard, without sockets")
struct HTTP1ConnectionGuardTests {
    typealias Machine = HTTP1ConnectionState

    @Test("Header deadline from the start, none while serving, keep-alive deadline after the response")
    func timers() {
        var machine = Machine()
        #expect(machine.started() == .header)
        #expect(machine.timerFired(.header))
        #expect(machine.headReceived(writable: true) == .forward)
        #expect(!machine.timerFired(.header))  // cancelled by the head
        machine.responseEnded()
        #expect(machine.timer == .none)  // not until the end is written
        #expect(machine.responseFlushed() == .keepAlive)
        #expect(machine.timerFired(.keepAlive))
        #expect(machine.responseFlushed() == nil)  // once
        machine.closed()
        #expect(!machine.timerFired(.keepAlive))
    }

    @Test("A request that arrives while the peer is not reading is held, and reads stop, until writable")
    func backpressure() {
        var machine = Machine()
        _ = machine.started()
        #expect(machine.readRequested(writable: false) == false)
        #expect(machine.headReceived(writable: false) == .hold)
        #expect(machine.timer == .stall)  // the peer must read again in time
        #expect(machine.partReceived() == .hold)
        #expect(machine.readRequested(writable: true) == false)  // still holding
        let released = machine.becameWritable()
        #expect(released.release && released.read && released.stallEnded)
        #expect(machine.partReceived() == .forward)
        #expect(machine.readRequested(writable: true) == true)
        let again = machine.becameWritable()
        #expect(!again.release && !again.read && !again.stallEnded)
    }

    /// helper-65: an HTTP/1.1 client that never read held a car's slot for as long as it kept the
    /// socket open; HTTP/2 resets such a stream after its stall timeout.
    @Test("A peer that stops reading mid-response has the stall time to read again, else the connection closes")
    func stall() {
        var machine = Machine()
        _ = machine.started()
        #expect(machine.headReceived(writable: true) == .forward)
        let stalled = machine.becameUnwritable()
        #expect(stalled && machine.timerFired(.stall))  // mid-response: the stall time starts
        let read = machine.becameWritable()
        #expect(read.stallEnded && !machine.timerFired(.stall))  // it read: no deadline while it is served
        // helper-90: the end queued behind unread bytes keeps the stall time; the keep-alive time starts
        // once it is written (before, it took over at once and closed the connection with them unsent).
        let stalledAgain = machine.becameUnwritable()
        machine.responseEnded()
        #expect(stalledAgain && machine.timerFired(.stall) && !machine.timerFired(.keepAlive))
        let readAgain = machine.becameWritable()
        #expect(readAgain.stallEnded && machine.timer == .none)
        #expect(machine.responseFlushed() == .keepAlive)
        #expect(machine.timerFired(.keepAlive))
        let replaced = machine.becameUnwritable()
        let cancelled = machine.becameWritable()
        #expect(!replaced && !cancelled.stallEnded && machine.timer == .keepAlive)  // not by the stall time
    }

    @Test("A pipelined head before the end is written owns the timers; a closed connection arms nothing")
    func pipelinedAndClosed() {
        var machine = Machine()
        _ = machine.started()
        _ = machine.headReceived(writable: true)
        machine.responseEnded()
        #expect(machine.headReceived(writable: true) == .forward)  // the next request, handed over at once
        #expect(machine.responseFlushed() == nil && machine.timer == .none)
        machine.responseEnded()
        machine.closed()
        #expect(machine.responseFlushed() == nil)
    }
}
