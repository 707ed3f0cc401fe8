import NIOCore
import NIOEmbedded
import Testing

@testable import FleetGate

extension TimerHeap {
    /// Pops the due timers and takes each: the handlers a firing would call.
    fileprivate mutating func handlersDue(at now: NIODeadline) -> [Handler] {
        var tokens: [Token] = []
        self.popDue(at: now, into: &tokens)
        return tokens.compactMap { self.take($0) }
    }
}

@Suite("TimerHeap and LoopTimers: a loop's request deadlines on one timer")
struct TimerHeapTests {
    private static func at(_ milliseconds: Int64) -> NIODeadline {
        .uptimeNanoseconds(UInt64(milliseconds) * 1_000_000)
    }

    @Test("Due timers come out earliest first; cancelled ones and later ones do not")
    func dueInOrder() {
        var heap = TimerHeap<Int>()
        let deadlines: [Int64] = [50, 10, 40, 20, 30, 60, 5]
        var tokens: [Int: TimerHeap<Int>.Token] = [:]
        for ms in deadlines { tokens[Int(ms)] = heap.schedule(at: Self.at(ms), Int(ms)) }
        let r1 = heap.cancel(tokens[20]!)
        #expect(r1)
        let r2 = heap.cancel(tokens[20]!)
        #expect(!r2, "a second cancel finds nothing")
        #expect(heap.count == 6)
        let r3 = heap.nextDeadline()
        #expect(r3 == Self.at(5))
        var due: [Int] = []
        due += heap.handlersDue(at: Self.at(40))
        #expect(due == [5, 10, 30, 40])
        let r4 = heap.cancel(tokens[10]!)
        #expect(!r4, "a timer that came due cannot be cancelled")
        #expect(heap.count == 2)
        let r5 = heap.nextDeadline()
        #expect(r5 == Self.at(50))
        due.removeAll()
        due += heap.handlersDue(at: Self.at(1_000))
        #expect(due == [50, 60])
        let r6 = heap.nextDeadline()
        #expect(r6 == nil)
    }

    @Test("A reused slot's old token cancels nothing; the cancelled top is skipped for the next deadline")
    func staleTokens() {
        var heap = TimerHeap<String>()
        let first = heap.schedule(at: Self.at(10), "first")
        let r7 = heap.cancel(first)
        #expect(r7)
        let second = heap.schedule(at: Self.at(20), "second")  // takes the freed slot
        let r8 = heap.cancel(first)
        #expect(!r8, "the old token names the slot's previous timer")
        let r9 = heap.nextDeadline()
        #expect(r9 == Self.at(20))
        var due: [String] = []
        due += heap.handlersDue(at: Self.at(20))
        #expect(due == ["second"])
        let r10 = heap.cancel(second)
        #expect(!r10)
    }

    @Test("Cancelled entries are dropped: the heap stays within a bound of the live timers")
    func boundedByLiveTimers() {
        var heap = TimerHeap<Int>()
        var keep: [TimerHeap<Int>.Token] = []
        for id in 0..<10 { keep.append(heap.schedule(at: Self.at(1_000_000 + Int64(id)), id)) }
        for request in 0..<100_000 {
            // A request's deadline, seconds away, cancelled before the next request (every body's).
            let token = heap.schedule(at: Self.at(30_000 + Int64(request)), request)
            heap.cancel(token)
            #expect(heap.storedEntries <= 2 * heap.count + 64)
        }
        #expect(heap.count == 10)
        for token in keep {
            let cancelled = heap.cancel(token)
            #expect(cancelled)
        }
        let r11 = heap.nextDeadline()
        #expect(r11 == nil)
    }

    @Test("Against a sorted list, in random order with cancels: the same timers come due in the same order")
    func matchesSortedReference() {
        var generator = SystemRandomNumberGenerator()
        var heap = TimerHeap<Int>()
        var live: [Int: (deadline: Int64, token: TimerHeap<Int>.Token)] = [:]
        var now: Int64 = 0
        var fired: [Int] = []
        for id in 0..<5_000 {
            let deadline = now + Int64.random(in: 0..<500, using: &generator)
            live[id] = (deadline, heap.schedule(at: Self.at(deadline), id))
            if Bool.random(using: &generator), let victim = live.keys.randomElement(using: &generator) {
                let r12 = heap.cancel(live.removeValue(forKey: victim)!.token)
                #expect(r12)
            }
            if id % 50 == 0 {
                now += 100
                var due: [Int] = []
                due += heap.handlersDue(at: Self.at(now))
                let expected = live.filter { $0.value.deadline <= now }
                #expect(Set(due) == Set(expected.keys))
                #expect(due.map { live[$0]!.deadline } == due.map { live[$0]!.deadline }.sorted())
                for id in due { live[id] = nil }
                fired += due
            }
            #expect(heap.count == live.count)
        }
        #expect(!fired.isEmpty)
    }

    private final class Recorder: LoopTimerTarget {
        var fired: [Int] = []
        var onFire: ((Int) -> Void)?
        func loopTimerFired(_ tag: Int) {
            self.fired.append(tag)
            self.onFire?(tag)
        }
    }

    @Test("On a loop: one NIO timer serves them all; cancelled timers never fire; a timer set while firing fires")
    func onALoop() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let timers = LoopTimers(eventLoop: loop)
        let recorder = Recorder()
        let start = loop.now
        _ = timers.schedule(at: start + .milliseconds(30), recorder, tag: 3)
        let cancelled = timers.schedule(at: start + .milliseconds(10), recorder, tag: 1)
        _ = timers.schedule(at: start + .milliseconds(20), recorder, tag: 2)
        timers.cancel(cancelled)
        recorder.onFire = { tag in
            if tag == 2 { _ = timers.schedule(at: loop.now + .milliseconds(5), recorder, tag: 4) }
        }
        loop.advanceTime(by: .milliseconds(15))
        #expect(recorder.fired.isEmpty, "the cancelled first timer fired nothing")
        loop.advanceTime(by: .milliseconds(5))
        #expect(recorder.fired == [2])
        loop.advanceTime(by: .milliseconds(5))
        #expect(recorder.fired == [2, 4], "set while firing, armed after")
        loop.advanceTime(by: .milliseconds(100))
        #expect(recorder.fired == [2, 4, 3])
        #expect(timers.count == 0)
    }

    @Test("A timer due in the same firing as another is not called once that one's handler cancelled it")
    func cancelledWhileFiring() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let timers = LoopTimers(eventLoop: loop)
        let recorder = Recorder()
        let first = timers.schedule(at: loop.now + .milliseconds(10), recorder, tag: 1)
        let second = timers.schedule(at: loop.now + .milliseconds(11), recorder, tag: 2)
        _ = first
        recorder.onFire = { tag in if tag == 1 { timers.cancel(second) } }
        loop.advanceTime(by: .milliseconds(20))  // both due in one firing
        #expect(recorder.fired == [1])
        #expect(timers.count == 0)
    }
}
