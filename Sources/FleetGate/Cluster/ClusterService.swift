import AsyncHTTPClient
import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Keeps this replica in the fleet's etcd and the ``ClusterView`` current (issue #21).
///
/// 1. Membership: a lease of `cluster.leaseTTLSeconds`, this replica's key under it
///    (`<prefix>members/<id>`: internal address, regions, zones), renewed every third of the TTL;
///    revoked on graceful shutdown, so the replica leaves at once (or within the TTL if it dies).
/// 2. Capacity digest (``CapacityDigest``) under the same lease at `<prefix>digests/<id>`, built
///    every `cluster.publishIntervalSeconds` and written only when it changed.
/// 3. Watch: one range read of the prefix, then a watch from the next revision; every replica's
///    digest lands in the view, a deleted key (lease lapsed) removes the replica.
/// 4. Quarantines (issue #20 across replicas): one decided here is written to
///    `<prefix>quarantine/<vehicle>` (no lease: it outlives the replica; `etcdctl del` lifts it), and
///    every replica refuses and closes the cars etcd lists there.
/// 5. Peers: one HTTP/2 connection (h2c prior knowledge) to each other replica's internal listener.
/// 6. Scaling out: idle car tunnels move from a replica holding more than its share of a region's to
///    one holding fewer (`rebalance()`, ``TunnelBalance``), so a replica added later gets cars too.
/// 7. Degradation: when etcd cannot be reached the replica keeps serving its own cars, says so in
///    `fleet_cluster_degraded` and `/readyz`'s detail, and retries every second. Readiness never
///    depends on etcd.
///
/// Uses its own `HTTPClient` (shut down when the service ends) and creates no unstructured task.
final class ClusterService: Service, Sendable {
    let core: GatewayCore
    let view: ClusterView
    let group: any EventLoopGroup
    let logger: Logger

    init(core: GatewayCore, view: ClusterView, group: any EventLoopGroup, logger: Logger) {
        self.core = core
        self.view = view
        self.group = group
        self.logger = logger
    }

    var configuration: GatewayConfiguration.Cluster { self.view.configuration }
    private var memberKey: String { self.configuration.prefix + "members/" + self.view.replicaID }
    private var digestKey: String { self.configuration.prefix + "digests/" + self.view.replicaID }

    func run() async throws {
        let http = HTTPClient(
            eventLoopGroup: self.group,
            configuration: .init(timeout: .init(connect: .seconds(2)), decompression: .disabled))
        let etcd = EtcdClient(
            http: http, endpoints: self.configuration.etcdEndpoints, writes: self.view.etcdWrites,
            bytes: self.view.etcdWriteBytes)
        let lease = LeaseBox()
        try? await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.membership(etcd, lease: lease) }
                group.addTask { await self.watch(etcd) }
                group.addTask { await self.peers() }
                group.addTask { await self.rebalance() }
            }
        }
        // Deregister: revoking the lease deletes our keys at once (bounded: etcd may be gone).
        if let id = lease.id.withLock({ $0 }) {
            do {
                try await etcd.revoke(id)
                self.logger.info("Left the cluster", metadata: ["fleet.replica": "\(self.view.replicaID)"])
            } catch {
                self.logger.info(
                    "Could not revoke the lease; it lapses within its TTL", metadata: ["error": "\(error)"])
            }
        }
        let connections = self.view.read { Array($0.connections.values) }
        connections.forEach { $0.channel.close(promise: nil) }
        try? await http.shutdown()
    }

    /// The lease this replica holds, if any (read at shutdown).
    final class LeaseBox: Sendable {
        let id = Mutex<Int64?>(nil)
    }

    // MARK: Membership and digests

    private func membership(_ etcd: EtcdClient, lease: LeaseBox) async {
        let ttl = self.configuration.leaseTTLSeconds
        let renewEvery = max(1.0, Double(ttl) / 3)
        let interval = self.configuration.publishIntervalSeconds
        var lastRenewal = -Double.infinity
        var lastReclaim = -Double.infinity
        var lastConflict = -Double.infinity
        var published: CapacityDigest?
        while !Task.isCancelled {
            do {
                let now = self.core.now
                if self.view.internalPort.load(ordering: .relaxed) < 0 || self.view.tunnelAddress.isEmpty {
                    // Not bound yet: nothing to advertise.
                    try? await Task.sleep(for: .milliseconds(50))
                    continue
                }
                if lease.id.withLock({ $0 }) == nil {
                    let id = try await etcd.grant(ttl: ttl)
                    let written = try await etcd.put(self.memberKey, value: self.memberRecord(), lease: id)
                    lease.id.withLock { $0 = id }
                    self.view.update {
                        $0.ownKeyLost = nil  // an earlier life's key, or the lapsed lease's
                        $0.ownRevision = max($0.ownRevision, written)
                    }
                    lastRenewal = now
                    published = nil
                    self.logger.info(
                        "Joined the cluster",
                        metadata: [
                            "fleet.replica": "\(self.view.replicaID)", "fleet.address": "\(self.view.address)",
                            "fleet.cluster.prefix": "\(self.configuration.prefix)",
                        ])
                } else if now - lastRenewal >= renewEvery, let id = lease.id.withLock({ $0 }) {
                    if try await etcd.keepAlive(id) <= 0 {
                        self.logger.warning("Cluster lease lapsed; registering again")
                        lease.id.withLock { $0 = nil }
                        continue
                    }
                    lastRenewal = now
                }
                // Our key written by another replica under our id, or deleted (that replica left and its lease
                // took the key): said, and registered again — at most every 10 s, as two replicas sharing an
                // id would otherwise take the key from each other at the watch's pace.
                if let lost = self.view.read(\.ownKeyLost), now - lastReclaim >= 10, let id = lease.id.withLock({ $0 })
                {
                    lastReclaim = now
                    if lost.hasPrefix("written by another replica") { lastConflict = now }
                    self.view.update {
                        $0.ownKeyLost = nil
                        $0.idConflict = $0.idConflict || lastConflict == now
                    }
                    self.recordDegraded()
                    self.logger.error(
                        "This replica's membership key was \(lost): give each replica its own cluster.replicaID; registering again",
                        metadata: ["fleet.replica": "\(self.view.replicaID)", "fleet.address": "\(self.view.address)"])
                    let written = try await etcd.put(self.memberKey, value: self.memberRecord(), lease: id)
                    self.view.update { $0.ownRevision = max($0.ownRevision, written) }
                    published = nil
                }
                if now - lastConflict > 60, self.view.read(\.idConflict) {
                    self.view.update { $0.idConflict = false }
                    self.recordDegraded()
                }
                let digest = self.core.registry.digest(
                    replica: self.view.replicaID, address: self.view.address, at: Date().timeIntervalSince1970,
                    now: self.core.now)
                if !digest.sameCapacity(as: published), let id = lease.id.withLock({ $0 }) {
                    let bytes = JSON.buffer(digest)
                    try await etcd.put(self.digestKey, value: bytes, lease: id)
                    published = digest
                    self.view.digestsPublished.increment()
                    self.view.digestBytes.record(bytes.readableBytes)
                }
                try await self.publishQuarantines(etcd)
                self.reachable(true, error: nil)
            } catch {
                if !Task.isCancelled { self.reachable(false, error: "\(error)") }
            }
            try? await Task.sleep(for: .seconds(interval))
        }
    }

    /// Writes the quarantines decided here that etcd does not have yet (each once; a failure is
    /// tried again at the next publish).
    private func publishQuarantines(_ etcd: EtcdClient) async throws {
        for (vehicle, reason) in self.core.trust.unpublishedQuarantines() {
            let record: [String: JSONValue] = [
                "reason": .string(reason), "replica": .string(self.view.replicaID),
                "at": .number(Date().timeIntervalSince1970.rounded()),
            ]
            try await etcd.put(
                self.configuration.prefix + "quarantine/" + vehicle, value: JSON.buffer(record), lease: nil)
            self.core.trust.published(vehicle)
            self.logger.notice(
                "Quarantine shared with the cluster", metadata: ["fleet.replica": "\(self.view.replicaID)"])
        }
    }

    /// Installs the quarantines the view holds; closes connected cars a new one names.
    private func installQuarantines() {
        let quarantines = self.view.read { $0.quarantines }
        if self.core.trust.installClusterQuarantines(quarantines) { self.core.enforceTrust() }
    }

    /// This replica's id and advertised address, as its membership record names them.
    private var own: (replica: String, address: String) { (self.view.replicaID, self.view.address) }

    private func memberRecord() -> ByteBuffer {
        let map = self.core.geo.current.map
        let record: [String: JSONValue] = [
            "address": .string(self.view.address),
            "tunnel": .string(self.view.tunnelAddress),
            "regions": .array(map.regions.keys.sorted().map { .string($0) }),
            "zones": .array(Set(map.regions.values.map(\.zone)).sorted().map { .string($0) }),
        ]
        return JSON.buffer(record)
    }

    private func reachable(_ reachable: Bool, error: String?) {
        // The first answer is said too: a wrong endpoint at start-up was otherwise never named (helper-121).
        let changed = self.view.read { $0.etcdReachable != reachable || !$0.etcdHeardFrom }
        self.view.update { s in
            s.etcdHeardFrom = true
            s.etcdReachable = reachable
            s.lastError = error.map { String($0.prefix(200)) }
            // Only a live watch keeps the digests fresh (helper-91: a dead watch was hidden by writes that worked).
            if reachable && s.watching { s.watchHealthyAt = self.core.now }
        }
        self.recordDegraded()
        if changed && reachable {
            self.logger.info("etcd reachable: cluster membership and digests active")
        } else if changed {
            self.logger.warning(
                "etcd unreachable at \(self.configuration.etcdEndpoints.map(CentralDirectory.redacted).joined(separator: ", ")) (cluster.etcdEndpoints): serving this replica's own cars only (degraded, still ready)",
                metadata: ["error.type": "\(error ?? "-")"])
        }
    }

    /// `fleet_cluster_degraded`: 1 while etcd cannot be written or watched, or another replica has this one's id.
    private func recordDegraded() {
        self.view.degradedGauge.record(self.view.read(\.degraded) ? 1 : 0)
    }

    // MARK: Watch

    private func watch(_ etcd: EtcdClient) async {
        let prefix = self.configuration.prefix
        // A watch that ends and is resumed at once is routine; a prefix that cannot be read is not: the other
        // replicas' capacity and the fleet's quarantines are no longer followed (helper-91).
        var readFailing = false
        while !Task.isCancelled {
            do {
                let read: (revision: Int64, values: [EtcdClient.KeyValue])
                do { read = try await etcd.range(prefix: prefix) } catch {
                    if !readFailing && !Task.isCancelled {
                        self.logger.warning(
                            "Cannot read the cluster's keys from etcd: other replicas and shared quarantines not followed (degraded)",
                            metadata: ["error": "\(String(describing: error).prefix(200))"])
                    }
                    readFailing = true
                    throw error
                }
                if readFailing {
                    self.logger.info("The cluster's keys are read from etcd again")
                    readFailing = false
                }
                let (revision, values) = read
                self.view.update { s in
                    s.digests = [:]
                    s.members = []
                    s.memberTunnels = [:]
                    s.quarantines = [:]
                    for value in values {
                        Self.apply(.put(value), prefix: prefix, to: &s, now: self.core.now, own: self.own)
                    }
                    s.watching = true
                    s.watchHealthyAt = self.core.now
                }
                self.recordDegraded()
                self.publishMembers()
                self.installQuarantines()
                try await etcd.watch(prefix: prefix, from: revision + 1) { event in
                    self.view.update { s in
                        Self.apply(event, prefix: prefix, to: &s, now: self.core.now, own: self.own)
                        s.watchHealthyAt = self.core.now
                    }
                    self.publishMembers()
                    if Self.isQuarantine(event, prefix: prefix) { self.installQuarantines() }
                }
            } catch {
                self.view.update { s in
                    if s.watching { s.watchHealthyAt = self.core.now }
                    s.watching = false
                }
                self.recordDegraded()
                if !Task.isCancelled {
                    self.logger.debug("etcd watch broken; retrying", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func publishMembers() {
        let (members, tunnels, addresses) = self.view.read { s in
            (
                s.members, s.memberTunnels.mapValues { "\($0.address) \($0.regions.sorted())" },
                s.memberTunnels.mapValues(\.address)
            )
        }
        self.view.replicasGauge.record(members.count)
        let others = members.subtracting([self.view.replicaID])
        let line = self.loggedOthers.withLock { before in
            defer { before = others }
            return ClusterView.membershipLine(others: others, before: before, prefix: self.configuration.prefix)
        }
        if let line { self.logger.log(level: line.level, "\(line.message)") }
        // Cars learn the other replicas' tunnel addresses when they change (issue #21); each
        // session sends only when its region's list differs from what it last sent.
        let changed = self.knownTunnels.withLock { known in
            defer { known = tunnels }
            return known != tunnels
        }
        if changed {
            if let warning = ClusterView.sharedTunnelWarning(addresses) { self.logger.warning("\(warning)") }
            for tunnel in self.core.tunnels.all {
                tunnel.execute { handler in (handler.delegate as? CarSession)?.tellReplicas() }
            }
        }
    }

    /// The other replicas last logged (nil: none yet).
    private let loggedOthers = Mutex<Set<String>?>(nil)

    /// The member tunnel addresses last told to the cars.
    private let knownTunnels = Mutex<[String: String]>([:])

    /// The part of a membership record the cars need.
    struct MemberRecord: Decodable {
        var address: String?
        var tunnel: String?
        var regions: [String]?
    }

    /// The part of a quarantine record the replicas need.
    struct QuarantineRecord: Decodable {
        var reason: String?
        var replica: String?
    }

    /// `text` without control characters, at most `limit` of its scalars.
    static func printable(_ text: String, limit: Int) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(
            contentsOf: text.unicodeScalars.lazy.filter { $0.value >= 0x20 && $0.value != 0x7F }.prefix(limit))
        return String(scalars)
    }

    /// Whether a watched change is to a quarantine key.
    static func isQuarantine(_ event: EtcdClient.Event, prefix: String) -> Bool {
        switch event {
        case .put(let value): value.key.hasPrefix(prefix + "quarantine/")
        case .delete(let key): key.hasPrefix(prefix + "quarantine/")
        }
    }

    // MARK: Peers

    /// The HTTP/2 settings of a connection to another replica: the defaults with keepalive PINGs
    /// (``HTTP2Configuration/keepaliveInterval``), so a dead peer is dropped — and the streams
    /// forwarded to it fail over — within `cluster.peerPingTimeoutSeconds`, not at a request's deadline.
    var peerHTTP2: HTTP2Configuration {
        var configuration = HTTP2Configuration.defaults
        configuration.keepaliveInterval = .nanoseconds(Int64(self.configuration.peerPingIntervalSeconds * 1e9))
        configuration.keepaliveTimeout = .nanoseconds(Int64(self.configuration.peerPingTimeoutSeconds * 1e9))
        return configuration
    }

    /// Keeps one HTTP/2 connection to every other replica with a digest; drops the rest.
    private func peers() async {
        while !Task.isCancelled {
            let (wanted, have) = self.view.read { s in
                (
                    s.digests.filter { $0.key != self.view.replicaID }.mapValues(\.a),
                    s.connections.filter { $0.value.channel.isActive }.keys
                )
            }
            for (replica, address) in wanted where !have.contains(replica) {
                guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...])
                else { continue }
                let host = String(address[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
                do {
                    let connection = try await HTTP2Client.connect(
                        host: host, port: port, group: self.group, configuration: self.peerHTTP2)
                    self.view.update { $0.connections[replica] = connection }
                    self.logger.debug("Connected to replica", metadata: ["fleet.replica": "\(replica)"])
                } catch {
                    self.logger.debug(
                        "Cannot reach replica", metadata: ["fleet.replica": "\(replica)", "error": "\(error)"])
                }
            }
            let stale = self.view.read { s in
                s.connections.filter { wanted[$0.key] == nil || !$0.value.channel.isActive }
            }
            if !stale.isEmpty {
                self.view.update { s in for key in stale.keys { s.connections[key] = nil } }
                for connection in stale.values { connection.channel.close(promise: nil) }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
