import Synchronization

/// Whether every listener is bound and the gateway is not shutting down.
public final class Readiness: Sendable {
    private let state = Mutex<(bound: Int, expected: Int, stopping: Bool)>((0, 0, false))

    public init(expected: Int) { self.state.withLock { $0.expected = expected } }

    func listenerBound() { self.state.withLock { $0.bound += 1 } }
    func stopping() { self.state.withLock { $0.stopping = true } }

    /// True when ready for traffic.
    public var isReady: Bool { self.state.withLock { $0.bound >= $0.expected && !$0.stopping } }
}
