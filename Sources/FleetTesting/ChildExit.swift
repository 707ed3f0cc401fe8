public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Whether a child has exited, asked of the kernel rather than of Foundation alone.
///
/// On Linux, Foundation learns that a child exited when a socket the child inherited reaches EOF, so a
/// grandchild, or a child started by another thread at the same moment, that holds a copy of that socket
/// keeps `Process.isRunning` true, and `waitUntilExit()` waiting, until it exits too — for good, if it is a
/// server the waiting test would stop next. The kernel is asked with `waitid(WNOWAIT)`, which reads the
/// exit without reaping the child, so Foundation's own wait still finds it.
public enum ChildExit {
    /// `process`'s exit status (the code, or the signal's number, as `Process.terminationStatus` gives
    /// them) once it has exited; nil while it runs.
    public static func status(of process: Process) -> Int32? {
        if !process.isRunning { return process.terminationStatus }
        #if canImport(Glibc)
            var info = siginfo_t()
            let pid = process.processIdentifier
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid
            {
                return info._sifields._sigchld.si_status
            }
        #endif
        // Running, or reaped by Foundation an instant ago (its `isRunning` follows at once).
        return process.isRunning ? nil : process.terminationStatus
    }

    /// Waits up to `timeout` for `process` to exit, blocking this thread; its status, or nil if it still runs.
    @discardableResult
    public static func wait(for process: Process, timeout: TimeInterval = 10) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let status = Self.status(of: process) { return status }
            if Date() >= deadline { return nil }
            usleep(5_000)
        }
    }

    /// Waits up to `timeout` for Foundation to reap `process` (`isRunning` false, the pid gone, not a zombie);
    /// whether it did. For a test that needs the pid gone, not only the exit.
    @discardableResult
    public static func waitUntilReaped(_ process: Process, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() >= deadline { return false }
            usleep(2_000)
        }
        return true
    }

    /// Waits up to `timeout` for `process` to exit without blocking a thread; its status, or nil if it still runs.
    public static func exit(of process: Process, timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = Self.status(of: process) { return status }
            if ContinuousClock.now >= deadline { return nil }
            do { try await Task.sleep(for: .milliseconds(5)) } catch { return Self.status(of: process) }
        }
    }
}
