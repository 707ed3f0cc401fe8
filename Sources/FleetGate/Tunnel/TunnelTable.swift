public import FleetHTTP2
public import FleetScheduler
import Synchronization

/// Maps registered cars to their tunnel connections.
public final class TunnelTable: Sendable {
    private let tunnels = Mutex<[CarID: HTTP2ConnectionHandle]>([:])
    /// Attempts running on each car that want to hear of its departure, by watch token.
    private let watchers = Mutex<(next: Int, byCar: [CarID: [Int: @Sendable (Double) -> Void]])>((0, [:]))

    public init() {}

    /// Registers a car (`register`, the registry's) and puts its tunnel in the table in one step,
    /// and takes out the tunnel of the registration it replaced (the vehicle id's older tunnel),
    /// which the caller closes.
    ///
    /// One step, because two hellos of one vehicle id are read on two event loops: registered
    /// apart, the newer could replace the older between the older's registration and its entry
    /// here, find no tunnel to close, and the older stayed in the table, open, for a car the
    /// registry no longer had (the car then closed the newer as its duplicate: a tunnel, and 503s).
    /// The registry's lock is taken inside this table's, never the other way round.
    func register(
        _ handle: HTTP2ConnectionHandle, _ register: () -> (id: CarID, replaced: CarID?)
    ) -> (id: CarID, replaced: HTTP2ConnectionHandle?) {
        self.tunnels.withLock { table in
            let (id, replaced) = register()
            table[id] = handle
            return (id, replaced.flatMap { table.removeValue(forKey: $0) })
        }
    }

    func remove(_ id: CarID) { _ = self.tunnels.withLock { $0.removeValue(forKey: id) } }

    /// The tunnel of a car, if it is connected.
    public func handle(for id: CarID) -> HTTP2ConnectionHandle? { self.tunnels.withLock { $0[id] } }

    /// Number of tunnels with a verified car.
    public var count: Int { self.tunnels.withLock { $0.count } }

    /// Calls `onDeparture` (with the seconds the car has left) if the car announces it leaves;
    /// returns a token for ``unwatch(_:token:)``.
    func watch(_ id: CarID, onDeparture: @escaping @Sendable (Double) -> Void) -> Int {
        self.watchers.withLock { state in
            state.next += 1
            state.byCar[id, default: [:]][state.next] = onDeparture
            return state.next
        }
    }

    /// Stops watching.
    func unwatch(_ id: CarID, token: Int) {
        self.watchers.withLock { state in
            state.byCar[id]?[token] = nil
            if state.byCar[id]?.isEmpty == true { state.byCar[id] = nil }
        }
    }

    /// The car announced it leaves in `secondsLeft`: tell every attempt running on it.
    package func announceDeparture(_ id: CarID, secondsLeft: Double) {
        let callbacks = self.watchers.withLock { Array(($0.byCar[id] ?? [:]).values) }
        for callback in callbacks { callback(secondsLeft) }
    }

    /// Every tunnel, for shutdown.
    var all: [HTTP2ConnectionHandle] { self.tunnels.withLock { Array($0.values) } }
}
