public import FleetProtocol
import Synchronization

/// Messages for one tunnel's status stream only (the ``AgentState`` subscription reaches every
/// tunnel's): issue #21's `primary` change, written on the tunnel that took the primary flag over,
/// and its `elsewhere`, when the car's other tunnels change.
public final class StatusNotices: Sendable {
    private let writer = Mutex<(@Sendable (StatusMessage) -> Void)?>(nil)
    private let attached = Mutex<(@Sendable () -> Void)?>(nil)

    public init() {}

    /// The status stream now open on this tunnel (its hello written) writes what ``send(_:)`` gets
    /// (nil: none open); then ``onAttach(_:)``'s body runs.
    func attach(_ body: (@Sendable (StatusMessage) -> Void)?) {
        self.writer.withLock { $0 = body }
        if body != nil { self.attached.withLock { $0 }?() }
    }

    /// What to do each time a status stream opens on this tunnel, after its hello: say what
    /// changed while none was open (a notice sent then finds no stream).
    package func onAttach(_ body: @escaping @Sendable () -> Void) {
        self.attached.withLock { $0 = body }
    }

    /// Whether this tunnel's status stream is open (the gateway resets it when it shuts the tunnel down).
    var isStreamOpen: Bool { self.writer.withLock { $0 != nil } }

    /// Writes `message` on this tunnel's status stream, if one is open; false when none is.
    @discardableResult
    public func send(_ message: StatusMessage) -> Bool {
        guard let writer = self.writer.withLock({ $0 }) else { return false }
        writer(message)
        return true
    }
}
