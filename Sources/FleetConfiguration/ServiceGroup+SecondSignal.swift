public import ServiceLifecycle
import UnixSignals

extension ServiceGroup {
    /// Runs a group configured with SIGTERM and SIGINT as its graceful-shutdown signals; a second one
    /// of either stops it at once, cutting what is still in flight, as an operator who presses Ctrl-C
    /// twice expects (helper-70 for the gateway, helper-130 for the agent: its second signal was
    /// ignored for the rest of its drain). ServiceGroup refuses a signal that is both a graceful and a
    /// cancelling one, so the second is counted here.
    /// - Returns: whether a second signal stopped it (the caller logs so).
    public func runStoppingAtSecondSignal() async throws -> Bool {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        return try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await self.run()
                return false
            }
            tasks.addTask {
                var seen = 0
                for await _ in signals {
                    seen += 1
                    if seen == 2 { return true }
                }
                return false
            }
            let first = try await tasks.next() ?? false
            tasks.cancelAll()
            return first
        }
    }
}
