package import NIOCore

/// The keep-alive connections to an upstream that one event loop keeps: which to reuse for an
/// exchange, which to park after one, which to close. Pure (issue #19): ``HTTP1ConnectionPool``
/// owns the sockets and does what the actions say.
///
/// - An exchange takes the most recently parked connection (its socket the warmest, and the oldest
///   ones left to expire), or a new one when none is parked.
/// - A connection is parked after an exchange only if it can carry another (the upstream kept it
///   alive and the response was read to its end), and only while fewer than ``Configuration/maxIdle``
///   are parked; otherwise it is closed.
/// - A parked connection idle longer than ``Configuration/idleTimeout`` is closed when the pool is
///   next used (no timer): an upstream that closes idle connections first is told by the socket
///   (``closed(_:)``).
///
/// Connections in use are not bounded here: the owner bounds the exchanges that run at once (the
/// agent's engine slots, the gateway's `central.maxConcurrent` lease per endpoint).
package struct HTTP1PoolState<Connection: Hashable>: Sendable where Connection: Sendable {
    package struct Configuration: Sendable, Hashable {
        /// Parked connections kept at most.
        package var maxIdle: Int
        /// How long a parked connection is kept.
        package var idleTimeout: TimeAmount

        package init(maxIdle: Int, idleTimeout: TimeAmount) {
            self.maxIdle = maxIdle
            self.idleTimeout = idleTimeout
        }
    }

    package enum Lease: Hashable, Sendable {
        /// Send the exchange on this parked connection.
        case reuse(Connection)
        /// Open a new connection for the exchange.
        case connect
    }

    package let configuration: Configuration
    /// Parked connections, most recently parked last.
    private var idle: [(connection: Connection, since: NIODeadline)] = []

    package init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Parked connections now.
    package var idleCount: Int { self.idle.count }

    /// An exchange needs a connection at `now`; `expired` are parked connections past their idle timeout, to close.
    package mutating func lease(now: NIODeadline) -> (lease: Lease, expired: [Connection]) {
        let expired = self.expire(now: now)
        guard let last = self.idle.popLast() else { return (.connect, expired) }
        return (.reuse(last.connection), expired)
    }

    /// An exchange on `connection` ended; `reusable`: the upstream kept it alive and its response was
    /// read to the end. Returns whether to park it, and parked connections to close.
    package mutating func released(_ connection: Connection, reusable: Bool, now: NIODeadline)
        -> (park: Bool, expired: [Connection])
    {
        let expired = self.expire(now: now)
        guard reusable, self.idle.count < self.configuration.maxIdle else { return (false, expired) }
        self.idle.append((connection, now))
        return (true, expired)
    }

    /// `connection` closed (the upstream closed a parked one, or it failed): it is no longer parked.
    package mutating func closed(_ connection: Connection) {
        self.idle.removeAll { $0.connection == connection }
    }

    /// Removes and returns the parked connections idle longer than the timeout (the oldest are first in the list).
    private mutating func expire(now: NIODeadline) -> [Connection] {
        guard let first = self.idle.first, now - first.since >= self.configuration.idleTimeout else { return [] }
        let count = self.idle.firstIndex { now - $0.since < self.configuration.idleTimeout } ?? self.idle.count
        let expired = self.idle.prefix(count).map(\.connection)
        self.idle.removeFirst(count)
        return expired
    }
}
