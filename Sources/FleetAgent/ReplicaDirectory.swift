import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The car's shared view of the gateway replicas (issue #21): one ``ReplicaChoice`` behind a lock,
/// shared by the car's ``TunnelClient`` slots, with the I/O the pure choice leaves out — a clock,
/// randomness, and DNS: every configured host name is resolved again (all its A records, or all
/// its AAAA records when it has no A record)
/// before a slot dials, at most once per ``minimumResolveInterval`` across slots.
///
/// It also carries the primary flag between tunnels: when the primary tunnel goes, the slot that
/// takes over is told (``onPromotion(slot:_:)``) so it can say so on its status stream.
package final class ReplicaDirectory: Sendable {
    /// Resolves a host name to its addresses (every A and AAAA record); tests inject one.
    package typealias Resolver = @Sendable (String) async throws -> [String]

    private struct State {
        var choice: ReplicaChoice
        var resolvedAt: [String: Double] = [:]
        var promotion: [Int: @Sendable () -> Void] = [:]
        /// Per slot: what it says when the car's other tunnels change, and what it said last.
        var elsewhereChanged: [Int: @Sendable ([String]) -> Bool] = [:]
        var toldElsewhere: [Int: [String]] = [:]
    }

    private let state: Mutex<State>
    /// Configured host names (not IP literals) and their ports, resolved before dials.
    private let names: [(name: String, port: Int)]
    private let resolver: Resolver
    private let clock: @Sendable () -> Double
    /// Host names are not resolved again more often than this (seconds).
    package let minimumResolveInterval: Double

    /// - Parameters:
    ///   - configured: the configured gateway addresses; IP literals are replicas as they are,
    ///     host names are resolved before each dial (each record a replica).
    ///   - clock: monotonic seconds; tests inject one.
    package init(
        configuration: ReplicaChoice.Configuration, configured: [ReplicaChoice.Endpoint],
        resolver: Resolver? = nil, clock: (@Sendable () -> Double)? = nil, minimumResolveInterval: Double = 1
    ) {
        let literals = configured.filter { Self.isLiteral($0.host) }
        self.names = configured.filter { !Self.isLiteral($0.host) }.map { ($0.host, $0.port) }
        self.state = Mutex(State(choice: ReplicaChoice(configuration: configuration, configured: literals)))
        self.resolver = resolver ?? Self.resolve
        self.clock = clock ?? { Double(NIODeadline.now().uptimeNanoseconds) / 1e9 }
        self.minimumResolveInterval = minimumResolveInterval
    }

    /// Reads or changes the choice under the lock.
    package func withChoice<T>(_ body: (inout ReplicaChoice) -> T) -> T {
        self.state.withLock { body(&$0.choice) }
    }

    /// Monotonic seconds now.
    package var now: Double { self.clock() }

    /// The first configured host name, if any.
    package var firstName: String? { self.names.first?.name }

    /// The name to verify on the certificate of the replica at `endpoint` when `gateway.serverName`
    /// is not set: the configured name it was resolved from; for an IP address a gateway told the
    /// car (and nothing resolved to), the first configured name, the one its cluster answered
    /// under; otherwise nil (a host name verifies itself, a configured IP address its own IP).
    package func serverHostname(for endpoint: ReplicaChoice.Endpoint) -> String? {
        guard Self.isLiteral(endpoint.host) else { return nil }
        return self.state.withLock { s in
            if let name = s.choice.resolvedName(of: endpoint) { return name }
            return s.choice.isConfigured(endpoint) ? nil : self.firstName
        }
    }

    /// Resolves the configured host names whose last resolution is older than `maxAge` (a failed
    /// lookup keeps what the name resolved to before).
    package func refresh(maxAge: Double) async {
        for (name, port) in self.names {
            let now = self.clock()
            let due = self.state.withLock { s in
                guard now - (s.resolvedAt[name] ?? -.infinity) >= max(maxAge, self.minimumResolveInterval) else {
                    return false
                }
                s.resolvedAt[name] = now
                return true
            }
            guard due, let addresses = try? await self.resolver(name), !addresses.isEmpty else { continue }
            self.state.withLock { $0.choice.resolved(name: name, port: port, addresses: addresses) }
        }
    }

    /// Registers what `slot` does when it becomes primary.
    package func onPromotion(slot: Int, _ body: @escaping @Sendable () -> Void) {
        self.state.withLock { $0.promotion[slot] = body }
    }

    /// Registers what `slot` says when the car's other tunnels change (``tunnelsChanged()``); the
    /// body returns whether it could say it (a tunnel whose status stream is not open yet cannot).
    package func onElsewhereChange(slot: Int, _ body: @escaping @Sendable ([String]) -> Bool) {
        self.state.withLock { $0.elsewhereChanged[slot] = body }
    }

    /// `slot`'s hello is being written: where the car's other tunnels are, for its `elsewhere`.
    package func helloElsewhere(slot: Int) -> [String] {
        self.state.withLock { s in
            let elsewhere = s.choice.elsewhere(than: slot)
            s.toldElsewhere[slot] = elsewhere
            return elsewhere
        }
    }

    /// A tunnel came, went or was named, or a status stream opened: every slot past its hello
    /// whose `elsewhere` changed since it last said it says so (a `state` line), so its replica
    /// does not move it to a replica the car holds already.
    package func tunnelsChanged() {
        let calls = self.state.withLock { s -> [(slot: Int, body: @Sendable ([String]) -> Bool, [String])] in
            s.elsewhereChanged.compactMap { slot, body in
                guard s.choice.helloWritten(slot: slot) else { return nil }
                let elsewhere = s.choice.elsewhere(than: slot)
                guard s.toldElsewhere[slot] != elsewhere else { return nil }
                return (slot, body, elsewhere)
            }
        }
        for (slot, body, elsewhere) in calls where body(elsewhere) {
            self.state.withLock { $0.toldElsewhere[slot] = elsewhere }
        }
    }

    /// A gateway's `replicas` on `slot`'s tunnel: the choice learns it.
    package func learned(_ addresses: [ReplicaChoice.Endpoint], from: ReplicaChoice.Endpoint?, slot: Int) {
        self.state.withLock { $0.choice.learned(addresses, from: from, slot: slot) }
        self.tunnelsChanged()  // the replica's own name may be new
    }

    /// `slot`'s tunnel closed: the choice records it; the slot that takes over the primary flag is told.
    package func lost(slot: Int, random: Double) {
        let now = self.clock()
        let promoted = self.state.withLock { s -> (@Sendable () -> Void)? in
            s.toldElsewhere[slot] = nil
            return s.choice.lost(slot: slot, now: now, random: random).flatMap { s.promotion[$0] }
        }
        promoted?()
        self.tunnelsChanged()
    }

    static func isLiteral(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    /// Every address `name` resolves to (getaddrinfo, TCP), of one family — the IPv4 ones, or the
    /// IPv6 ones when it has none — on NIO's blocking-I/O pool.
    @Sendable package static func resolve(_ name: String) async throws -> [String] {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = AF_UNSPEC
            #if canImport(Glibc)
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            #else
                hints.ai_socktype = SOCK_STREAM
            #endif
            var result: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(name, nil, &hints, &result) == 0, let first = result else { return [] }
            defer { freeaddrinfo(first) }
            var addresses: [String] = []
            var cursor: UnsafeMutablePointer<addrinfo>? = first
            while let info = cursor {
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                if getnameinfo(
                    info.pointee.ai_addr, info.pointee.ai_addrlen, &host, socklen_t(host.count), nil, 0,
                    NI_NUMERICHOST) == 0
                {
                    let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    if !addresses.contains(text) { addresses.append(text) }
                }
                cursor = info.pointee.ai_next
            }
            // One address family: a dual-stack host (or `localhost`) answers A and AAAA for one
            // machine, which must not count as two replicas; IPv4 first, as NIO's Happy Eyeballs.
            let v4 = addresses.filter { !$0.contains(":") }
            return v4.isEmpty ? addresses : v4
        }
    }
}
