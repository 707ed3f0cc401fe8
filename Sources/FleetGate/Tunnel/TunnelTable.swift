public import FleetHTTP2
public import FleetScheduler
import Synchronization

/// Maps registered cars to their tunnel connections.
public final class TunnelTable: Sendable {
    private let tunnels = Mutex<[CarID: HTTP2ConnectionHandle]>([:])

    public init() {}

    func add(_ id: CarID, _ handle: HTTP2ConnectionHandle) { self.tunnels.withLock { $0[id] = handle } }
    func remove(_ id: CarID) { _ = self.tunnels.withLock { $0.removeValue(forKey: id) } }

    /// The tunnel of a car, if it is connected.
    public func handle(for id: CarID) -> HTTP2ConnectionHandle? { self.tunnels.withLock { $0[id] } }

    /// Number of tunnels with a verified car.
    public var count: Int { self.tunnels.withLock { $0.count } }

    /// Every tunnel, for shutdown.
    var all: [HTTP2ConnectionHandle] { self.tunnels.withLock { Array($0.values) } }
}
