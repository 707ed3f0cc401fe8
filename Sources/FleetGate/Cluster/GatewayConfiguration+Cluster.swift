public import Configuration
import FleetConfiguration
import Foundation

extension GatewayConfiguration {
    /// Many gateways, one fleet (issue #21, DESIGN.md "Many gateways"): membership and capacity
    /// digests in etcd, forwarding between replicas. Off unless ``etcdEndpoints`` is set, and then
    /// nothing of it runs or costs anything.
    public struct Cluster: Sendable, Hashable {
        /// etcd client URLs (`http://host:2379`), tried in order; empty (the default) turns clustering off.
        public var etcdEndpoints: [String] = []
        /// The key prefix every replica of one fleet shares.
        public var prefix: String = "/fleetgate/"
        /// This replica's name in etcd; empty means the host name and the internal port.
        public var replicaID: String = ""
        /// The membership lease's TTL: a replica whose lease lapses is out within it.
        public var leaseTTLSeconds: Int = 10
        /// How often the capacity digest is published (only when it changed).
        public var publishIntervalSeconds: Double = 1
        /// The internal listener other replicas forward to (h2c; bind on a private network).
        public var internalHost: String = "127.0.0.1"
        /// Its port (0: any free port).
        public var internalPort: Int = 7080
        /// The address other replicas dial for the internal listener (`host:port`); empty means
        /// ``internalHost`` and the bound port.
        public var advertiseAddress: String = ""
        /// The tunnel address cars dial for this replica (`host:port`), told to the cars of the
        /// other replicas so they can keep tunnels on distinct replicas; empty means the tunnel
        /// listener's host and bound port (with a wildcard host: ``internalHost``'s or
        /// ``advertiseAddress``'s host).
        public var advertiseTunnelAddress: String = ""
        /// Keepalive PINGs on the HTTP/2 connections to other replicas: one this often, and a
        /// peer that leaves one unanswered for ``peerPingTimeoutSeconds`` is dropped (its
        /// forwarded streams fail over) without waiting for a request to time out.
        public var peerPingIntervalSeconds: Double = 1
        public var peerPingTimeoutSeconds: Double = 2
        /// Forward when a remote replica's best predicted TTFT beats the best local one by this much, ms.
        public var forwardMarginMilliseconds: Double = 200
        /// A digest older than this is not trusted for forwarding.
        public var maxDigestAgeSeconds: Double = 5
        /// The most idle car tunnels this replica moves to replicas holding fewer in one round
        /// (``TunnelBalance``; a round every ``rebalanceRoundSeconds`` at most); 0 never moves any.
        public var rebalanceMaxMoves: Int = 32
        /// How long a region must look out of balance before this replica moves any of its tunnels:
        /// longer than an agent's 30 s avoidance of a drained replica, so a replica back from a
        /// restart fills up with its own cars first.
        public var rebalanceAfterSeconds: Double = 40

        /// The least time between two rounds that moved tunnels: enough for the moved cars to
        /// dial their new replica and its digest to say so.
        public var rebalanceRoundSeconds: Double { max(5, 4 * self.publishIntervalSeconds) }

        /// Whether clustering is on.
        public var enabled: Bool { !self.etcdEndpoints.isEmpty }
        /// The defaults: off.
        public static var defaults: Self { Self() }
        public init() {}
    }
}

extension GatewayConfiguration.Cluster {
    /// ## Configuration keys:
    /// - `etcdEndpoints` (string list, default empty = off): etcd client URLs. Restart.
    /// - `prefix` (string, default `/fleetgate/`): the key prefix shared by one fleet's replicas. Restart.
    /// - `replicaID` (string, default empty = `host:internalPort`, the host name alone for port 0). Restart.
    /// - `leaseTTLSeconds` (int, default 10, 2…300). Restart.
    /// - `publishIntervalSeconds` (double, default 1, 0.1…60). Restart.
    /// - `internalHost` (string, default 127.0.0.1), `internalPort` (int, default 7080): the internal listener. Restart.
    /// - `advertiseAddress` (string, default empty): `host:port` other replicas dial. Restart.
    /// - `forwardMarginMilliseconds` (double, default 200), `maxDigestAgeSeconds` (double, default 5). Restart.
    /// - `advertiseTunnelAddress` (string, default empty): `host:port` cars dial for this replica. Restart.
    /// - `peerPingIntervalSeconds` (double, default 1, 0.1…60), `peerPingTimeoutSeconds` (double, default 2,
    ///   0.1…60): keepalive PINGs to other replicas. Restart.
    /// - `rebalanceMaxMoves` (int, default 32, 0…10000): idle car tunnels moved a round to replicas holding
    ///   fewer; 0 moves none. `rebalanceAfterSeconds` (double, default 40, 0…86400): how long a region must
    ///   look out of balance first. Restart.
    public init(config: ConfigReader) throws {
        self.init()
        self.etcdEndpoints = try config.strings("etcdEndpoints")
        for endpoint in self.etcdEndpoints {
            guard let url = URL(string: endpoint), url.scheme == "http" || url.scheme == "https", url.host != nil else {
                throw ConfigurationError(
                    .invalidValue, key: "etcdEndpoints", value: CentralDirectory.redacted(endpoint),
                    "is not an http(s) URL")
            }
        }
        self.prefix = try config.string("prefix")
        guard self.prefix.hasSuffix("/"), !self.prefix.isEmpty else {
            throw ConfigurationError(.invalidValue, key: "prefix", value: self.prefix, "must end with /")
        }
        self.replicaID = try config.string("replicaID")
        guard !self.replicaID.contains("/") else {
            throw ConfigurationError(.invalidValue, key: "replicaID", value: self.replicaID, "must not contain /")
        }
        self.leaseTTLSeconds = try config.int("leaseTTLSeconds", in: 2...300)
        self.publishIntervalSeconds = try config.double("publishIntervalSeconds", in: 0.1...60)
        self.internalHost = try config.string("internalHost")
        self.internalPort = try config.int("internalPort", in: 0...65535)
        self.advertiseAddress = try config.string("advertiseAddress")
        self.forwardMarginMilliseconds = try config.double("forwardMarginMilliseconds", in: 0...600_000)
        self.maxDigestAgeSeconds = try config.double("maxDigestAgeSeconds", in: 0.1...3_600)
        self.advertiseTunnelAddress = try config.string("advertiseTunnelAddress")
        if !self.advertiseTunnelAddress.isEmpty {
            guard let colon = self.advertiseTunnelAddress.lastIndex(of: ":"),
                colon != self.advertiseTunnelAddress.startIndex,
                let port = Int(self.advertiseTunnelAddress[self.advertiseTunnelAddress.index(after: colon)...]),
                1...65535 ~= port
            else {
                throw ConfigurationError(
                    .invalidValue, key: "advertiseTunnelAddress", value: self.advertiseTunnelAddress, "is not host:port"
                )
            }
        }
        self.peerPingIntervalSeconds = try config.double("peerPingIntervalSeconds", in: 0.1...60)
        self.peerPingTimeoutSeconds = try config.double("peerPingTimeoutSeconds", in: 0.1...60)
        self.rebalanceMaxMoves = try config.int("rebalanceMaxMoves", in: 0...10_000)
        self.rebalanceAfterSeconds = try config.double("rebalanceAfterSeconds", in: 0...86_400)
    }

    static var configKeys: ConfigSchema {
        let d = Self.defaults
        return ConfigSchema([
            .strings(
                "etcdEndpoints", d.etcdEndpoints,
                "etcd client URLs (v3 JSON gateway); empty: one replica, no clustering. Restart.",
                aliases: ["--etcd"]),
            .string("prefix", d.prefix, "etcd key prefix shared by one fleet's replicas. Restart."),
            .string(
                "replicaID", d.replicaID,
                "This replica's name in etcd (empty: host name and internal port, `host:7080`; the host name alone with internal port 0). Restart."
            ),
            .int(
                "leaseTTLSeconds", d.leaseTTLSeconds, "Membership lease TTL; a dead replica is out within it. Restart."),
            .double(
                "publishIntervalSeconds", d.publishIntervalSeconds,
                "How often the capacity digest is published, only when it changed. Restart."),
            .string("internalHost", d.internalHost, "Address of the internal listener replicas forward to. Restart."),
            .int("internalPort", d.internalPort, "Port of the internal listener (h2c). Restart."),
            .string(
                "advertiseAddress", d.advertiseAddress,
                "host:port other replicas dial for the internal listener (empty: internalHost and the bound port). Restart."
            ),
            .double(
                "forwardMarginMilliseconds", d.forwardMarginMilliseconds,
                "Forward when a remote digest's best TTFT beats the best local car by this much, ms. Restart."),
            .double(
                "maxDigestAgeSeconds", d.maxDigestAgeSeconds,
                "A remote digest older than this is not used for forwarding. Restart."),
            .string(
                "advertiseTunnelAddress", d.advertiseTunnelAddress,
                "host:port cars dial for this replica, told to other replicas' cars (empty: the tunnel listener's). Restart."
            ),
            .double(
                "peerPingIntervalSeconds", d.peerPingIntervalSeconds,
                "Keepalive PING interval on connections to other replicas. Restart."),
            .double(
                "peerPingTimeoutSeconds", d.peerPingTimeoutSeconds,
                "A replica that leaves a keepalive PING unanswered this long is dropped. Restart."),
            .int(
                "rebalanceMaxMoves", d.rebalanceMaxMoves,
                "Idle car tunnels moved a round (every 5 s at most) to replicas holding fewer of their region's; 0: none. Restart."
            ),
            .double(
                "rebalanceAfterSeconds", d.rebalanceAfterSeconds,
                "How long a region must look out of balance before tunnels move (longer than cars' 30 s avoidance of a restarted replica). Restart."
            ),
        ])
    }
}
