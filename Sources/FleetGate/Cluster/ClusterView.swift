import CoreMetrics
import Crypto
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Synchronization

/// What this replica knows of the others (issue #21): their digests from etcd's watch, the
/// HTTP/2 connections to their internal listeners, and whether etcd is reachable — shared by the
/// ``ClusterService`` that keeps it current and by the request path that reads it.
///
/// 1. Picks a forwarding target for a (zone, model) when a remote digest promises a better TTFT
///    than the best local car by the configured margin, or when no local car can serve; counts
///    the forwards in flight per replica against its digest's free slots, so a digest a second
///    old is not overrun by every request in that second.
/// 2. Signs and verifies the forwarded origin (``ForwardedOrigin``); believes it only on the
///    internal listener.
/// 3. Reports degradation (etcd unreachable) as a metric and in `/readyz`'s detail — never as
///    unreadiness: a replica without etcd still serves its own cars.
///
/// Exists only when `cluster.etcdEndpoints` is set: with clustering off, the request path sees a
/// nil ``GatewayCore/cluster`` and does nothing more.
public final class ClusterView: Sendable {
    /// A replica to forward to, with the connection to use.
    struct Target: Sendable {
        var replica: String
        var address: String
        var zone: String
        var connection: HTTP2ConnectionHandle
    }

    struct State {
        var digests: [String: CapacityDigest] = [:]
        /// When each digest arrived (monotonic seconds).
        var receivedAt: [String: Double] = [:]
        var connections: [String: HTTP2ConnectionHandle] = [:]
        var outstanding: [String: Int] = [:]
        var members: Set<String> = []
        /// Each member's tunnel address and regions (its membership record), for the cars.
        var memberTunnels: [String: (address: String, regions: Set<String>)] = [:]
        var etcdReachable = false
        /// Whether etcd has answered, or failed to, once (``etcdReachable`` starts false either way).
        var etcdHeardFrom = false
        var lastError: String?
        /// Monotonic seconds when the watch last delivered or was known healthy.
        var watchHealthyAt: Double = -.infinity
        var watching = false
        var lastPublished: CapacityDigest?
        /// The fleet's quarantines (`<prefix>quarantine/<vehicle>`): vehicle → reason.
        var quarantines: [String: String] = [:]
        /// How this replica's own membership key was lost, until it registers again: written by another
        /// replica under the same `cluster.replicaID`, or deleted (helper-107: the real replica vanished
        /// from the cluster and nothing said so).
        var ownKeyLost: String?
        /// The store's revision of this life's last write of its membership key (0: none yet): a record of
        /// its id with another address from before it is an earlier life's, not another replica's.
        var ownRevision: Int64 = 0
        /// Another replica wrote this one's membership key within the last minute: two replicas share a
        /// `cluster.replicaID`, and each takes the key from the other (helper-121: only the log said so).
        var idConflict = false
        /// etcd cannot be written, or its watch is not followed, or another replica has this one's id
        /// (`fleet_cluster_degraded`, `/readyz`).
        var degraded: Bool { !self.etcdReachable || !self.watching || self.idConflict }
    }

    let configuration: GatewayConfiguration.Cluster
    let replicaID: String
    /// The forwarded-origin key's bytes (`SymmetricKey` is not `Sendable`).
    private let forwardKeyBytes: [UInt8]
    var forwardKey: SymmetricKey { SymmetricKey(data: self.forwardKeyBytes) }
    private let state = Mutex(State())
    /// The internal listener's bound port (0 until bound).
    let internalPort = Atomic<Int>(-1)
    private let advertised = Mutex<String>("")
    /// The tunnel address cars dial for this replica (empty until the tunnel listener is bound).
    private let advertisedTunnel = Mutex<String>("")

    let degradedGauge: Gauge
    let replicasGauge: Gauge
    let forwardedOut: Counter
    let forwardedIn: Counter
    let forwardRefused: Counter
    let etcdWrites: Counter
    let etcdWriteBytes: Counter
    let digestsPublished: Counter
    let digestBytes: Gauge
    /// Car tunnels this replica moved to replicas holding fewer (``TunnelBalance``).
    let tunnelsMoved: Counter

    init(configuration: GatewayConfiguration.Cluster, fleetSecret: String, factory: any MetricsFactory) {
        self.configuration = configuration
        self.replicaID =
            configuration.replicaID.isEmpty
            ? Self.defaultReplicaID(
                hostName: ProcessInfo.processInfo.hostName, internalPort: configuration.internalPort)
            : configuration.replicaID
        self.forwardKeyBytes = ForwardedOrigin.key(fleetSecret: fleetSecret).withUnsafeBytes { Array($0) }
        self.degradedGauge = Gauge(label: "fleet_cluster_degraded", factory: factory)
        self.replicasGauge = Gauge(label: "fleet_cluster_replicas", factory: factory)
        self.forwardedOut = Counter(label: "fleet_cluster_forwarded_total", factory: factory)
        self.forwardedIn = Counter(label: "fleet_cluster_forwarded_in_total", factory: factory)
        self.forwardRefused = Counter(label: "fleet_cluster_forwarded_origin_refused_total", factory: factory)
        self.etcdWrites = Counter(label: "fleet_cluster_etcd_writes_total", factory: factory)
        self.etcdWriteBytes = Counter(label: "fleet_cluster_etcd_write_bytes_total", factory: factory)
        self.digestsPublished = Counter(label: "fleet_cluster_digests_published_total", factory: factory)
        self.digestBytes = Gauge(label: "fleet_cluster_digest_bytes", factory: factory)
        self.tunnelsMoved = Counter(label: "fleet_cluster_tunnels_moved_total", factory: factory)
        self.degradedGauge.record(1)
    }

    /// The id of a replica without `cluster.replicaID`: its host name and internal port, as the docs
    /// say — two replicas on one host differ in that port (with the host name alone they took each
    /// other's membership key in turn, helper-121); the host name alone for port 0 (tests).
    static func defaultReplicaID(hostName: String, internalPort: Int) -> String {
        let host = hostName.replacingOccurrences(of: "/", with: "_")
        return internalPort == 0 ? host : "\(host):\(internalPort)"
    }

    /// The `host:port` other replicas dial.
    var address: String { self.advertised.withLock { $0 } }

    /// The internal listener is bound at `port`.
    func internalListenerBound(port: Int) {
        self.internalPort.store(port, ordering: .relaxed)
        let configured = self.configuration.advertiseAddress
        self.advertised.withLock { $0 = configured.isEmpty ? "\(self.configuration.internalHost):\(port)" : configured }
    }

    /// The tunnel listener is bound at `address` (issue #21: cars of other replicas are told it).
    func tunnelListenerBound(_ address: SocketAddress) {
        let configured = self.configuration.advertiseTunnelAddress
        var host = address.ipAddress ?? "127.0.0.1"
        if host == "0.0.0.0" || host == "::" {
            let advertised = self.address
            host =
                advertised.lastIndex(of: ":").map { String(advertised[..<$0]) }.flatMap { $0.isEmpty ? nil : $0 }
                ?? self.configuration.internalHost
        }
        let formatted = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        self.advertisedTunnel.withLock { $0 = configured.isEmpty ? "\(formatted):\(address.port ?? 0)" : configured }
    }

    /// The tunnel address cars dial for this replica.
    var tunnelAddress: String { self.advertisedTunnel.withLock { $0 } }

    /// The tunnel addresses of the other live replicas that serve `region` (from their
    /// membership records), sorted: what a car of that region is told (control `replicas`).
    func otherTunnels(region: String) -> [String] {
        self.state.withLock { s in
            s.memberTunnels.filter { $0.key != self.replicaID && $0.value.regions.contains(region) }
                .map(\.value.address).sorted()
        }
    }

    /// Whether the other replicas' digests are current: while the watch is, and for
    /// `cluster.maxDigestAgeSeconds` after it broke (then they age out).
    private func isFresh(_ s: State, now: Double) -> Bool {
        s.watching || now - s.watchHealthyAt < self.configuration.maxDigestAgeSeconds
    }

    /// The other live replicas serving `region` whose digests count their tunnels, with their
    /// tunnel addresses and the region's tunnels there (``TunnelBalance``); nil while the watch is
    /// stale (no moves on an old picture). Replicas that advertise one tunnel address take no part
    /// (``sharedTunnelWarning(_:)``): a car sent to that address may land on either, and a replica
    /// sharing its own address with another sent cars to itself (helper-121: moved a round, never
    /// balanced). So nil when this replica's address is shared, and such peers are left out.
    func tunnelPeers(region: String, now: Double) -> [TunnelBalance.Peer]? {
        let own = self.tunnelAddress
        return self.state.withLock { s in
            guard self.isFresh(s, now: now) else { return nil }
            return Self.tunnelPeers(
                region: region, own: (self.replicaID, own), members: s.memberTunnels, counts: s.digests.mapValues(\.k))
        }
    }

    /// ``tunnelPeers(region:now:)`` of one picture: `members` the live replicas' tunnel addresses and
    /// regions (this one's too, or not yet), `counts` their digests' tunnels per region (nil: a digest
    /// without them, an older replica's).
    static func tunnelPeers(
        region: String, own: (replica: String, address: String),
        members: [String: (address: String, regions: Set<String>)], counts: [String: [String: Int]?]
    ) -> [TunnelBalance.Peer]? {
        var addresses = members.mapValues(\.address)
        addresses[own.replica] = own.address
        let shared = Self.sharedTunnelAddresses(addresses)
        guard shared[own.address.lowercased()] == nil else { return nil }
        return members.compactMap { replica, member -> TunnelBalance.Peer? in
            guard replica != own.replica, member.regions.contains(region), shared[member.address.lowercased()] == nil,
                let tunnels = counts[replica] ?? nil
            else { return nil }
            return TunnelBalance.Peer(address: member.address, tunnels: tunnels[region] ?? 0)
        }
    }

    // MARK: Forwarding (request path)

    /// A replica to forward a (zone, model) request to, or nil to stay local. Takes one of the
    /// target's free slots until ``forwardEnded(_:)``.
    ///
    /// Digests predict the TTFT of a reference request, so the comparison is reference against
    /// reference: the remote digest's best against this replica's own last digest's best (the
    /// request's own prediction includes its prompt, which would make every remote look faster).
    /// - Parameter localHasCar: whether the scheduler found a local car for the request at all.
    func forwardTarget(zone: String, model: String, localHasCar: Bool, excluding: [String], now: Double) -> Target? {
        let margin = self.configuration.forwardMarginMilliseconds
        return self.state.withLock { s -> Target? in
            // Digests are current while the watch is; after it breaks they age out.
            guard self.isFresh(s, now: now) else { return nil }
            var best: (target: Target, ttft: Double)?
            for (replica, digest) in s.digests where replica != self.replicaID && !excluding.contains(replica) {
                guard let entry = digest.entry(zone: zone, model: model),
                    entry.reachableSlots - (s.outstanding[replica] ?? 0) > 0,
                    let connection = s.connections[replica], connection.channel.isActive
                else { continue }
                let ttft = entry.t.first.map(Double.init) ?? .infinity
                if best == nil || ttft < best!.ttft {
                    best = (Target(replica: replica, address: digest.a, zone: zone, connection: connection), ttft)
                }
            }
            guard let best else { return nil }
            if localHasCar {
                guard let own = s.digests[self.replicaID]?.entry(zone: zone, model: model)?.t.first,
                    best.ttft + margin < Double(own)
                else { return nil }
            }
            s.outstanding[best.target.replica, default: 0] += 1
            return best.target
        }
    }

    /// Whether another replica's current digest lists capacity (cars) for `model` in `zone`.
    func hasCapacity(zone: String, model: String, now: Double) -> Bool {
        return self.state.withLock { s in
            guard self.isFresh(s, now: now) else { return false }
            return s.digests.contains { $0.key != self.replicaID && $0.value.entry(zone: zone, model: model) != nil }
        }
    }

    /// The models other replicas' current digests list (any zone): what this replica can forward
    /// (helper-107: a replica without cars of its own answered 404 to every model its peers' cars served).
    func models(now: Double) -> Set<String> {
        Set(self.remoteEntries(now: now) { $0.flatMap { $0.e.map(\.m) } })
    }

    /// Whether another replica's current digest lists `model` (a request's check: no set built).
    func serves(model: String, now: Double) -> Bool {
        self.remoteEntries(now: now) { $0.contains { $0.e.contains { $0.m == model } } }
    }

    /// `body` of the other replicas' digests, none while the watch is stale.
    private func remoteEntries<T>(now: Double, _ body: ([CapacityDigest]) -> T) -> T {
        return self.state.withLock { s in
            let fresh = self.isFresh(s, now: now)
            return body(fresh ? s.digests.filter { $0.key != self.replicaID }.map(\.value) : [])
        }
    }

    /// A forward to `target` ended.
    func forwardEnded(_ target: Target) {
        self.state.withLock { s in
            let left = (s.outstanding[target.replica] ?? 1) - 1
            s.outstanding[target.replica] = left > 0 ? left : nil
        }
    }

    /// The signed origin header for a forwarded request.
    func signedOrigin(_ origin: Origin, requestID: String) -> String {
        let expires = Int(Date().timeIntervalSince1970) + ForwardedOrigin.lifetimeSeconds
        return ForwardedOrigin(origin: origin, expires: expires, requestID: requestID).signed(with: self.forwardKey)
    }

    /// The origin a replica forwarded, when `head` carries one and arrived on the internal
    /// listener; nil otherwise (a client's forwarded-origin and hop headers are ignored).
    /// - Throws: `APIError` (403) when the header arrived on the internal listener but is not valid.
    func forwardedOrigin(_ head: HTTPRequest, connection: HTTPConnectionInfo, map: RegionMap) throws(APIError)
        -> Origin?
    {
        guard let value = head.headerFields[.fleetForwardedOrigin],
            let port = connection.localAddress?.port, port == self.internalPort.load(ordering: .relaxed)
        else { return nil }
        do {
            guard head.headerFields[.fleetHop] == "1" else { throw ForwardedOrigin.Refusal.malformed }
            let forwarded = try ForwardedOrigin.verify(
                value, key: self.forwardKey, map: map, now: Int(Date().timeIntervalSince1970))
            self.forwardedIn.increment()
            return forwarded.origin
        } catch {
            self.forwardRefused.increment()
            throw APIError(
                status: 403, type: "permission_error", code: "forwarded_origin_refused",
                message: "x-fleet-forwarded-origin refused (\(error)).")
        }
    }

    // MARK: State from the service

    func update(_ body: (inout State) -> Void) { self.state.withLock { body(&$0) } }
    func read<T>(_ body: (State) -> T) -> T { self.state.withLock { body($0) } }

    /// The detail `/readyz` shows: etcd reachable or not, replicas and digests seen, the cars
    /// other replicas' digests offer (primary tunnels only). Never part of readiness.
    /// `GET /admin/cluster`'s answer.
    func statusView(now: Double) -> ClusterStatusView {
        self.state.withLock {
            ClusterStatusView($0, replica: self.replicaID, prefix: self.configuration.prefix, now: now)
        }
    }

    /// The line to log when the other replicas under the prefix change, nil when they did not
    /// (`before` nil: the first read since the start). Alone is a notice naming the prefix
    /// (helper-107: a replica started with a mistyped `cluster.prefix` joined a cluster of its
    /// own and said nothing); otherwise the members, at info (membership changes are rare).
    static func membershipLine(others: Set<String>, before: Set<String>?, prefix: String) -> (
        level: Logger.Level, message: String
    )? {
        guard others != before else { return nil }
        if others.isEmpty {
            return (
                .notice,
                "No other replica under cluster.prefix '\(prefix)': this replica is alone "
                    + "(replicas of one fleet share cluster.prefix and cluster.etcdEndpoints)"
            )
        }
        return (.info, "Cluster members under '\(prefix)': this replica and \(others.sorted().joined(separator: ", "))")
    }

    /// The tunnel addresses more than one replica advertises (`replica → address`), each with those
    /// replicas; keyed in lower case, since host names compare without case (`GW:7443` is `gw:7443`).
    static func sharedTunnelAddresses(_ tunnels: [String: String]) -> [String: [String]] {
        Dictionary(grouping: tunnels.keys, by: { tunnels[$0]!.lowercased() }).filter { $0.value.count > 1 }
    }

    /// The warning to log when replicas advertise one tunnel address (`replica → address`; all behind
    /// one balancer's name, say): a car cannot tell them apart, so it keeps one tunnel where it should
    /// keep two, and tunnels are not moved between them. Nil when every address is a replica's own.
    static func sharedTunnelWarning(_ tunnels: [String: String]) -> String? {
        let shared = Self.sharedTunnelAddresses(tunnels)
        guard !shared.isEmpty else { return nil }
        let list = shared.keys.sorted().map { "\($0) (\(shared[$0]!.sorted().joined(separator: ", ")))" }
        return "Replicas share a tunnel address: \(list.joined(separator: "; ")); cars cannot tell them apart "
            + "(one tunnel where two should be, no tunnels moved to or from them): give each its own cluster.advertiseTunnelAddress"
    }

    var readyDetail: String {
        self.state.withLock { s in
            let error = s.lastError.map { ",\"error\":\(JSON.string($0))" } ?? ""
            let remoteCars = s.digests.filter { $0.key != self.replicaID }.values.reduce(0) {
                $0 + $1.e.reduce(0) { $0 + $1.c }
            }
            return
                "{\"replica\":\(JSON.string(self.replicaID)),\"etcd\":\(s.etcdReachable ? "\"ok\"" : "\"unreachable\""),"
                + "\"degraded\":\(s.degraded),\"watching\":\(s.watching),\"replicas\":\(s.members.count),\"digests\":\(s.digests.count),"
                + "\"remoteCars\":\(remoteCars),\"peers\":\(s.connections.values.filter { $0.channel.isActive }.count)"
                + "\(s.idConflict ? ",\"idConflict\":true" : "")\(error)}"
        }
    }
}
