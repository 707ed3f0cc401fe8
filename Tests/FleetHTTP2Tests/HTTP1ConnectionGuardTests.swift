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
        #expect(machine.responseEnded() == .keepAlive)
        #expect(machine.timerFired(.keepAlive))
        machine.closed()
        #expect(!machine.timerFired(.keepAlive))
    }

    @Test("A request that arrives while the peer is not reading is held, and reads stop, until writable")
    func backpressure() {
        var machine = Machine()
        _ = machine.started()
        #expect(machine.readRequested(writable: false) == false)
        #expect(machine.headReceived(writable: false) == .hold)
        #expect(machine.partReceived() == .hold)
        #expect(machine.readRequested(writable: true) == false)  // still holding
        #expect(machine.becameWritable() == (release: true, read: true))
        #expect(machine.partReceived() == .forward)
        #expect(machine.readRequested(writable: true) == true)
        #expect(machine.becameWritable() == (release: false, read: false))
    }
}
