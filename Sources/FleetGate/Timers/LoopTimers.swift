import NIOCore

/// Something a ``LoopTimers`` timer calls; `tag` tells the target's timers apart.
protocol LoopTimerTarget: AnyObject {
    func loopTimerFired(_ tag: Int)
}

/// The per-request deadlines of one event loop (a request body's 408, an attempt's first token,
/// hedge and watchdog) on one NIO timer, armed at the earliest of them (issue #19).
///
/// Scheduling and cancelling a timer on NIO cost ~5,000 instructions a request (a heap insert and
/// remove of `ScheduledTask` values, a generic wrapper's metadata looked up at run time), and a
/// request's deadlines are nearly all cancelled, seconds before they are due. Here setting one is a
/// push on a ``TimerHeap`` (NIO is asked only when it comes before every other), and cancelling
/// one clears its slot.
///
/// Touched on ``eventLoop`` only (every caller is a stream's delegate on that loop), so there is
/// no lock. A timer holds its target until it fires or is cancelled, as NIO's did.
final class LoopTimers {
    typealias Token = TimerHeap<Callee>.Token

    struct Callee {
        let target: any LoopTimerTarget
        let tag: Int
    }

    let eventLoop: any EventLoop
    private var heap = TimerHeap<Callee>()
    /// The one NIO timer, and when it is due.
    private var armed: (deadline: NIODeadline, callback: NIOScheduledCallback)?
    /// Set while due timers are called: what they set is armed for once, after the last.
    private var firing = false
    /// The timers due at a firing, kept to be reused.
    private var due: [Token] = []

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Timers set and neither cancelled nor due yet (for tests).
    var count: Int { self.heap.count }

    /// Calls `target.loopTimerFired(tag)` at `deadline`, unless cancelled before.
    func schedule(at deadline: NIODeadline, _ target: any LoopTimerTarget, tag: Int = 0) -> Token {
        self.eventLoop.preconditionInEventLoop()
        let token = self.heap.schedule(at: deadline, Callee(target: target, tag: tag))
        if !self.firing { self.arm(deadline) }
        return token
    }

    /// Cancels a timer (nothing if it fired already).
    func cancel(_ token: Token) {
        self.eventLoop.preconditionInEventLoop()
        self.heap.cancel(token)
    }

    /// Arms NIO's timer at `deadline` unless it is armed for then or earlier. A timer armed for a
    /// deadline that was cancelled since stays: it fires, finds nothing due, and arms for the next.
    private func arm(_ deadline: NIODeadline) {
        if let armed = self.armed, armed.deadline <= deadline { return }
        self.armed?.callback.cancel()
        self.armed = nil
        guard
            let callback = try? self.eventLoop.assumeIsolated().scheduleCallback(
                at: deadline, handler: Fire(timers: self))
        else { return }  // the loop is shutting down
        self.armed = (deadline, callback)
    }

    private func fire() {
        self.armed = nil
        self.firing = true
        self.heap.popDue(at: self.eventLoop.now, into: &self.due)
        for token in self.due {
            // Not one an earlier handler of this firing cancelled (another attempt of its request).
            guard let callee = self.heap.take(token) else { continue }
            callee.target.loopTimerFired(callee.tag)
        }
        self.due.removeAll(keepingCapacity: true)
        self.firing = false
        if let next = self.heap.nextDeadline() { self.arm(next) }
    }

    private struct Fire: NIOScheduledCallbackHandler {
        let timers: LoopTimers

        func handleScheduledCallback(eventLoop: some EventLoop) {
            self.timers.fire()
        }
    }
}
