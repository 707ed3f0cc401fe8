/// Runs of one job where the callers that arrive while a run is under way share the next run.
///
/// A reload reads files that may have changed after a run started, so a caller cannot join the run
/// already going: it waits for the next, which every caller arriving meanwhile shares. Sixty reloads
/// asked for at once are two runs, not sixty queued behind a lock (helper-54: 37 s of a 50 MB map's
/// reloads held up the graceful shutdown). Pure: the owner runs the job and keeps the lock.
struct CoalescingStateMachine<Waiter> {
    private enum State {
        case idle
        /// A run is under way; `next` wait for the one after it.
        case running(next: [Waiter])
    }

    private var state = State.idle

    /// What the owner does after a request.
    enum RequestAction {
        /// Start a run now, for these waiters.
        case startRun([Waiter])
        /// Nothing: the waiter shares the run after the one under way.
        case wait
    }

    /// A caller asks for a run.
    mutating func requested(_ waiter: Waiter) -> RequestAction {
        switch self.state {
        case .idle:
            self.state = .running(next: [])
            return .startRun([waiter])
        case .running(var next):
            next.append(waiter)
            self.state = .running(next: next)
            return .wait
        }
    }

    /// The run under way finished (its own waiters are the owner's to answer). Returns the waiters of
    /// the next run to start now, or nil when none asked meanwhile.
    mutating func runFinished() -> [Waiter]? {
        guard case .running(let next) = self.state else { preconditionFailure("no run was under way") }
        if next.isEmpty {
            self.state = .idle
            return nil
        }
        self.state = .running(next: [])
        return next
    }
}
