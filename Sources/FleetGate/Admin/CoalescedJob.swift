import NIOCore
import NIOPosix
import Synchronization

/// A blocking job (a reload) run on NIO's thread pool, with the callers that arrive while it runs
/// sharing the next run (``CoalescingStateMachine``). Every caller passes the same job; a run uses
/// its first waiter's.
final class CoalescedJob<Value: Sendable>: Sendable {
    typealias Job = @Sendable () -> Value
    private typealias Waiter = (promise: EventLoopPromise<Value>, job: Job)

    private let machine = Mutex(CoalescingStateMachine<Waiter>())

    init() {}

    /// Runs `job`, or shares the next run if one is under way; the result arrives on `eventLoop`.
    func run(on eventLoop: any EventLoop, _ job: @escaping Job) -> EventLoopFuture<Value> {
        let promise = eventLoop.makePromise(of: Value.self)
        if case .startRun(let waiters) = self.machine.withLock({ $0.requested((promise, job)) }) {
            self.start(waiters)
        }
        return promise.futureResult
    }

    private func start(_ waiters: [Waiter]) {
        let first = waiters[0]
        NIOThreadPool.singleton.runIfActive(eventLoop: first.promise.futureResult.eventLoop, first.job)
            .whenComplete { result in
                for waiter in waiters { waiter.promise.completeWith(result) }
                if let next = self.machine.withLock({ $0.runFinished() }) { self.start(next) }
            }
    }
}
