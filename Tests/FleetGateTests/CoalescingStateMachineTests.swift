import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import FleetGate

@Suite("Coalesced reloads")
struct CoalescingStateMachineTests {
    @Test("The first caller starts a run; callers during it share the next; the machine idles after")
    func machine() {
        var machine = CoalescingStateMachine<Int>()
        guard case .startRun(let first) = machine.requested(1) else { Issue.record("no run started"); return }
        #expect(first == [1])
        for waiter in 2...5 {
            guard case .wait = machine.requested(waiter) else { Issue.record("a second run started"); return }
        }
        #expect(machine.runFinished() == [2, 3, 4, 5])  // one run for the four that came during the first
        guard case .wait = machine.requested(6) else { Issue.record("a run started during a run"); return }
        #expect(machine.runFinished() == [6])
        #expect(machine.runFinished() == nil)
        guard case .startRun([7]) = machine.requested(7) else { Issue.record("idle machine did not start"); return }
    }

    @Test("Sixty callers at once are two runs, and every caller gets its run's result")
    func job() async throws {
        let runs = Atomic(0)
        let job = CoalescedJob<Int>()
        let eventLoop = MultiThreadedEventLoopGroup.singleton.any()
        let gate = Mutex(true)  // the first run blocks until every caller has asked
        var futures: [EventLoopFuture<Int>] = []
        for _ in 0..<60 {
            futures.append(
                job.run(on: eventLoop) {
                    while gate.withLock({ $0 }) { usleep(1000) }
                    return runs.wrappingAdd(1, ordering: .relaxed).newValue
                })
        }
        gate.withLock { $0 = false }
        var results: [Int] = []
        for future in futures { results.append(try await future.get()) }
        #expect(runs.load(ordering: .relaxed) == 2)
        #expect(results == [1] + Array(repeating: 2, count: 59))
    }
}
