public import ServiceLifecycle
import UnixSignals

extension ServiceGroup {
    /// Runs a group configured with SIGTERM and SIGINT as its graceful-shutdown signals; a second one
    /// of either stops it at once, cutting what is still in flight, as an operator who presses Ctrl-C
    /// twice expects (helper-70 for the gateway, helper-130 for the agent: its second signal was
    /// ignored for the rest of its drain). ServiceGroup refuses a signal that is both a graceful and a
    /// cancelling one, so the second is counted here.
    /// - Returns: the second signal when one stopped it (the caller logs so and exits with its
    ///   ``StoppedAtSecondSignal/exitCode``); nil when the group ended otherwise.
    public func runStoppingAtSecondSignal() async throws -> StoppedAtSecondSignal? {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        return try await withThrowingTaskGroup(of: StoppedAtSecondSignal?.self) { tasks in
            tasks.addTask {
                try await self.run()
                return nil
            }
            tasks.addTask {
                var seen = 0
                for await signal in signals {
                    seen += 1
                    if seen == 2 { return StoppedAtSecondSignal(signal: signal.rawValue) }
                }
                return nil
            }
            let first: StoppedAtSecondSignal? = try await tasks.next() ?? nil
            tasks.cancelAll()
            return first
        }
    }
}

/// A second SIGTERM or SIGINT stopped the program before its drain ended: work in flight was cut.
///
/// The program exits with ``exitCode``, 128 + the signal's number, as a shell reports a process that
/// signal ended (130 for SIGINT, 143 for SIGTERM): a supervisor must not read a cut stop as a whole
/// drain, which exits 0 (helper-136: both exited 0). docs/operations.md, "Exit codes".
public struct StoppedAtSecondSignal: Error, Sendable, CustomStringConvertible {
    /// The second signal's number.
    public var signal: Int32

    public init(signal: Int32) {
        self.signal = signal
    }

    /// The process's exit code: 128 + ``signal``.
    public var exitCode: Int32 { 128 + self.signal }

    public var description: String { "stopped at a second signal (\(self.signal)): work in flight was cut" }
}
