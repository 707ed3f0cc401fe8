import NIOCore
import NIOEmbedded
import Testing

@testable import FleetGate

@Suite("EventLoopLoad: a pass's count ends where the loop runs its next tasks")
struct EventLoopLoadTests {
    @Test("The first admission of a pass submits its end; the loop's next run of tasks resets the count")
    func passEndsAfterTheLoopsIO() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let load = EventLoopLoad(
            eventLoop: loop, configuration: { .init(maxInFlight: 100, lagThreshold: .milliseconds(10)) })
        for admitted in 1...3 {
            #expect(load.admit() == .admit)
            #expect(load.passAdmitted == admitted, "one pass: the loop has not run its tasks")
        }
        loop.run()  // the pass's I/O is done: NIO runs the submitted task
        #expect(load.passAdmitted == 0)
        #expect(load.admit() == .admit)
        #expect(load.passAdmitted == 1, "the next pass counts from none")
        loop.run()
        #expect(load.passAdmitted == 0)
        for _ in 0..<4 { load.finished() }
    }
}
