public import Foundation

/// Starts every child of tests and of `fleet-load` (a gateway, agents, etcd, a model server, and the
/// tools `Subprocess.run` runs) so that they die with their parent, even one killed with SIGKILL — which no
/// signal handler sees, and which left `fleetgate` running orphaned after a killed `fleet-load`.
///
/// Each child starts under `setpriv --pdeathsig TERM` (util-linux, on every Debian): the kernel
/// sends it SIGTERM, a graceful stop, when the thread that started it exits. That is the
/// *thread*, not the process, so every child is started from one thread that lives as long as
/// the process (a cooperative or Dispatch thread can exit when idle, which would stop the child
/// in the middle of a test). Without `setpriv` the child starts as before.
public enum ChildLauncher {
    private static let thread = LauncherThread()
    private static let setpriv = Subprocess.which("setpriv")

    /// Runs `process` (its `executableURL` and `arguments` set) so that it dies with this process.
    public static func run(_ process: Process) throws {
        try Self.run(process) { _ in }
    }

    /// Runs `process` after `prepare`, both on the launcher thread: make the child's pipes in `prepare`.
    ///
    /// Every child and every pipe of this process is made on that one thread. On Linux, Foundation
    /// closes in the child the descriptors open when it prepares the spawn, not those another thread
    /// opens before the spawn itself: a curl's pipe made meanwhile stayed open in a model server started
    /// beside it, and the test reading curl's output to its end, or waiting for its exit (see
    /// ``ChildExit``), waited for that server — which the same test would stop only afterwards.
    public static func run<Prepared>(_ process: Process, prepare: @escaping (Process) -> Prepared) throws -> Prepared {
        if let setpriv = Self.setpriv, let executable = process.executableURL?.path {
            process.arguments = ["--pdeathsig", "TERM", "--", executable] + (process.arguments ?? [])
            process.executableURL = URL(fileURLWithPath: setpriv)
        }
        var prepared: Prepared?
        try Self.thread.perform {
            prepared = prepare(process)
            try Self.withNoSignalBlocked { try process.run() }
        }
        return prepared!
    }

    /// Runs `body` with no signal blocked on this thread. A child starts with the signal mask of the thread
    /// that spawned it, and the launcher thread is made from a Swift concurrency or Dispatch thread, which
    /// block SIGTERM and most others: every child ignored SIGTERM (a test's graceful stop was always the
    /// SIGKILL after its grace, a tool past its timeout was never stopped, and the parent-death signal
    /// stayed pending in a server that outlived its test process).
    private static func withNoSignalBlocked<T>(_ body: () throws -> T) rethrows -> T {
        var none = sigset_t()
        var saved = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, &saved)
        defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
        return try body()
    }
}

/// One thread that never exits, running what it is handed.
private final class LauncherThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    init() {
        let thread = Thread { [self] in
            while true {
                self.condition.lock()
                while self.jobs.isEmpty { self.condition.wait() }
                let job = self.jobs.removeFirst()
                self.condition.unlock()
                job()
            }
        }
        thread.name = "fleet-child-launcher"
        thread.start()
    }

    /// Runs `body` on the thread and waits for it (a spawn takes a millisecond).
    func perform(_ body: @escaping () throws -> Void) throws {
        let done = DispatchSemaphore(value: 0)
        var failure: (any Error)?
        self.condition.lock()
        self.jobs.append {
            do { try body() } catch { failure = error }
            done.signal()
        }
        self.condition.signal()
        self.condition.unlock()
        done.wait()
        if let failure { throw failure }
    }
}
