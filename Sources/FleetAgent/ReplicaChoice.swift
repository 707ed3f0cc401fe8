import NIOCore

/// Which gateway replica each of a car's tunnels dials next, and which tunnel is primary
/// (issue #21: cars move to another replica when theirs drains or dies). Pure: no sockets, no
/// clock of its own (every call takes `now`, monotonic seconds, and a random fraction), so its
/// decisions are unit-tested as plain values.
///
/// Responsibilities:
/// 1. Keep the known replicas: the configured addresses, each host name's resolved records (every
///    A/AAAA record is a distinct replica), and the addresses gateways tell the car on the control
///    channel (`replicas`, and `reconnect`'s `to`).
/// 2. Give each of the ``Configuration/tunnels`` slots a *distinct* replica: never two tunnels to
///    one replica (the gateway would let the second replace the first). A replica a slot holds
///    is known by the address dialled and by the address the gateway says it is (`from`), and an
///    address whose tunnel reached a replica known by another address is its *alias* from then
///    on. Until a gateway has sent `replicas` (so the car knows its gateways are a cluster), the
///    slots hold distinct *configured entries* (a host name as written, not each of its records:
///    one gateway behind a name with two A records is one gateway), so at most as many tunnels
///    as entries; when two tunnels turn out to reach one replica anyway (their `from`s agree),
///    the replica closes the one it replaced (GOAWAY), and the car does not take that loss as a
///    failure. The car does not pick the one to close itself: which hello the replica read last
///    is the replica's to say (two tunnels are two paths, and ~1 run in 3 of
///    `oneReplicaTwoAddresses` read them in the other order than the car wrote them).
/// 3. After a loss, re-dial a replica the car is not connected to, after the slot's jittered
///    exponential ``Backoff``; a replica that failed waits out its own backoff, one that drains is
///    avoided for ``Configuration/avoidDraining`` seconds (while another tunnel is up the slot
///    waits that out rather than dial it: a replica says `reconnect` once, so a new tunnel to it
///    would never hear it); the same replica again only when no other is known; among the rest,
///    one the `reconnect` named, for as long (a replica moving cars to a newcomer names it).
/// 4. One primary tunnel: the first to send its hello claims it; when it goes, the primary moves
///    to a surviving tunnel (``lost(slot:now:random:)`` says which), so the car stays one car in
///    the replicas' capacity digests.
package struct ReplicaChoice: Sendable {
    /// A replica's tunnel address.
    package struct Endpoint: Hashable, Sendable, CustomStringConvertible {
        package var host: String
        package var port: Int
        package init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `host:port` (IPv6 literals bracketed), or nil when `text` is not one.
        package init?(_ text: String) {
            guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
                let port = Int(text[text.index(after: colon)...]), 1...65535 ~= port
            else { return nil }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { return nil }
            self.init(host: host, port: port)
        }

        package var description: String {
            self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        }
    }

    /// The choice's settings.
    package struct Configuration: Sendable {
        /// Tunnels kept at once, each to a different replica.
        package var tunnels: Int
        /// A slot's wait before dialling after a failure or loss (attempt n of the slot), jittered.
        package var backoff: Backoff
        /// How long a replica that said it drains (`reconnect`) is passed over while others are known.
        package var avoidDraining: Double
        package init(tunnels: Int, backoff: Backoff, avoidDraining: Double = 30) {
            self.tunnels = max(1, tunnels)
            self.backoff = backoff
            self.avoidDraining = avoidDraining
        }
    }

    /// What a slot should do now.
    package enum Decision: Equatable, Sendable {
        /// Dial this replica.
        case dial(Endpoint)
        /// Nothing to dial yet: ask again after this many seconds.
        case wait(Double)
    }

    struct Replica {
        var endpoint: Endpoint
        /// Why it is known: configured, resolved from a name (the name and port as configured), told by a gateway.
        var configured = false
        var resolvedFrom: Set<Endpoint> = []
        var learned = false
        /// The replica a tunnel to this address reached, when the gateway named itself otherwise
        /// (`from`): while that replica is held, so is this address.
        var aliasOf: Endpoint?
        /// Dials that failed (or tunnels lost) since the last tunnel to it came up.
        var failures = 0
        /// Not dialled before this time.
        var notBefore = -Double.infinity
        /// Passed over (while another is known) until this time: it said it drains.
        var avoidUntil = -Double.infinity
        /// Preferred over other replicas until this time: a `reconnect` named it (a replica moving
        /// some of its cars to one that holds fewer names only that one).
        var suggestedUntil = -Double.infinity
        var known: Bool { self.configured || !self.resolvedFrom.isEmpty || self.learned }
        /// The configured entries (or gateway-told addresses) it comes from: itself, and the names it resolved from.
        var sources: Set<Endpoint> {
            self.configured || self.learned ? self.resolvedFrom.union([self.endpoint]) : self.resolvedFrom
        }
    }

    enum Slot: Equatable {
        case idle
        case dialling(Endpoint)
        /// Up. The address the gateway says it is (its `replicas` message's `from`), when another,
        /// is the endpoint's ``Replica/aliasOf``.
        case connected(Endpoint)
    }

    package let configuration: Configuration
    private(set) var replicas: [Endpoint: Replica] = [:]
    /// Insertion order, so choices among equals are reproducible.
    private var order: [Endpoint] = []
    private(set) var slots: [Slot]
    /// Per slot: failures since its last tunnel stayed up (``stableSeconds``), and when it may dial again.
    private var slotAttempts: [Int]
    private var slotReadyAt: [Double]
    /// Per slot: when its tunnel came up (nil while none is up).
    private var slotConnectedAt: [Double?]
    /// How long a tunnel must stay up for its slot's backoff to start again from the first step. A
    /// gateway that accepts the connection and then refuses the car (a region its map no longer has, a
    /// revoked certificate) closed it within milliseconds, and the slot — its backoff reset by the
    /// connection — dialled again at once: six times a second, for ever (helper-52's attack).
    package static let stableSeconds = 10.0
    /// How long a replica that moved a tunnel away (`reconnect` with `rebalance`) is passed over: it
    /// does not drain, and when the replica it named is one the car holds already (the other tunnel
    /// got there first), the slot dials another at once rather than after ``Configuration/avoidDraining``.
    package static let avoidMovedFrom = 2.0
    /// Per slot: the configured entries of the replica it holds (as they were when it dialled).
    private var slotSources: [Set<Endpoint>]
    /// Per slot: whether its tunnel's hello was written.
    private var helloSent: [Bool]
    /// Per slot: its replica moved it away (`reconnect` with `rebalance`): its close is no failure,
    /// however long its last streams took.
    private var movedAway: [Bool]
    /// The configured host names (with their ports) resolved so far, in the order first resolved.
    private var names: [Endpoint] = []
    /// A gateway sent `replicas`: the car's gateways are a cluster, every record a replica.
    package private(set) var clustered = false
    /// The slot whose tunnel the car's hello called primary.
    package private(set) var primary: Int?

    /// - Parameter configured: the configured addresses (host names are added as they resolve).
    package init(configuration: Configuration, configured: [Endpoint] = []) {
        self.configuration = configuration
        self.slots = Array(repeating: .idle, count: configuration.tunnels)
        self.slotAttempts = Array(repeating: 0, count: configuration.tunnels)
        self.slotReadyAt = Array(repeating: -.infinity, count: configuration.tunnels)
        self.slotConnectedAt = Array(repeating: nil, count: configuration.tunnels)
        self.slotSources = Array(repeating: [], count: configuration.tunnels)
        self.helloSent = Array(repeating: false, count: configuration.tunnels)
        self.movedAway = Array(repeating: false, count: configuration.tunnels)
        for endpoint in configured { self.touch(endpoint) { $0.configured = true } }
    }

    // MARK: What the car knows

    /// The replicas known now (configured, resolved or learned), in the order first heard of.
    package var known: [Endpoint] { self.order.filter { self.replicas[$0]?.known == true } }

    /// The endpoints slots hold (dialling or connected), with the gateways' own names for them
    /// and every address known as an alias of one of those.
    package var held: Set<Endpoint> {
        var held: Set<Endpoint> = []
        for slot in self.slots {
            switch slot {
            case .idle: break
            case .dialling(let endpoint), .connected(let endpoint):
                held.formUnion(self.addresses(of: endpoint))
            }
        }
        for replica in self.replicas.values where replica.aliasOf.map(held.contains) == true {
            held.insert(replica.endpoint)
        }
        return held
    }

    /// Slots with a tunnel up.
    package var connectedCount: Int {
        self.slots.filter { if case .connected = $0 { true } else { false } }.count
    }

    /// Whether `endpoint` was configured as it is (an IP address in `gateway.address(es)`).
    package func isConfigured(_ endpoint: Endpoint) -> Bool { self.replicas[endpoint]?.configured == true }

    /// Dials of `endpoint` that failed (or tunnels to it lost) since a tunnel to it last came up.
    package func failures(of endpoint: Endpoint) -> Int { self.replicas[endpoint]?.failures ?? 0 }

    /// The endpoint a slot is connected to, if any.
    package func endpoint(of slot: Int) -> Endpoint? {
        if case .connected(let endpoint) = self.slots[slot] { return endpoint }
        return nil
    }

    /// The endpoint a slot dials or is connected to, if any (a hello may come before the dial's task
    /// saw its tunnel up).
    package func target(of slot: Int) -> Endpoint? {
        switch self.slots[slot] {
        case .connected(let endpoint), .dialling(let endpoint): endpoint
        case .idle: nil
        }
    }

    /// The name to verify on the certificate of the replica at `endpoint`: the configured host
    /// name it was resolved from (the first in configured order when several), or nil when it was
    /// not resolved from one.
    package func resolvedName(of endpoint: Endpoint) -> String? {
        guard let names = self.replicas[endpoint]?.resolvedFrom, !names.isEmpty else { return nil }
        return self.names.first { names.contains($0) }?.host
    }

    /// `name` (a configured host name) resolved to `addresses`: each is a replica; addresses the
    /// name no longer returns are forgotten (unless known otherwise).
    package mutating func resolved(name: String, port: Int, addresses: [String]) {
        let source = Endpoint(host: name, port: port)
        if !self.names.contains(source) { self.names.append(source) }
        let fresh = Set(addresses.map { Endpoint(host: $0, port: port) })
        for endpoint in self.order where self.replicas[endpoint]?.resolvedFrom.contains(source) == true {
            if !fresh.contains(endpoint) { self.replicas[endpoint]?.resolvedFrom.remove(source) }
        }
        for endpoint in fresh.sorted(by: { $0.description < $1.description }) {
            self.touch(endpoint) { $0.resolvedFrom.insert(source) }
        }
    }

    /// A gateway told the car its region's other live replicas (`to`) and its own address
    /// (`from`), over `slot`'s tunnel: the learned set becomes these, the car knows its gateways
    /// are a cluster, and the address `slot` dialled is an alias of `from`. When another slot's
    /// tunnel reaches `from` too, the replica has replaced one of the two (it keeps one tunnel a
    /// car) and closes it; the survivor holds both addresses, so neither slot dials them again.
    package mutating func learned(_ addresses: [Endpoint], from: Endpoint?, slot: Int) {
        self.clustered = true
        let fresh = Set(addresses + (from.map { [$0] } ?? []))
        for endpoint in self.order where self.replicas[endpoint]?.learned == true && !fresh.contains(endpoint) {
            self.replicas[endpoint]?.learned = false
        }
        for endpoint in addresses + (from.map { [$0] } ?? []) { self.touch(endpoint) { $0.learned = true } }
        guard let from else { return }
        switch self.slots[slot] {
        // Also while dialling: the gateway may speak before the dial's task saw the tunnel up.
        case .dialling(let endpoint), .connected(let endpoint):
            self.replicas[endpoint]?.aliasOf = from == endpoint ? nil : from
        case .idle:
            break
        }
    }

    /// The replica `slot`'s tunnel reaches: the gateway's name for it when it gave one.
    private func replica(of slot: Int) -> Endpoint? {
        guard case .connected(let endpoint) = self.slots[slot] else { return nil }
        return self.replicas[endpoint]?.aliasOf ?? endpoint
    }

    /// `endpoint` and the replica's own address when the gateway named it otherwise.
    private func addresses(of endpoint: Endpoint) -> [Endpoint] {
        [endpoint] + (self.replicas[endpoint]?.aliasOf.map { [$0] } ?? [])
    }

    /// The replica behind `slot` drains (`reconnect`): pass it over for a while, and learn `to`; or
    /// it moves the tunnel to a replica holding fewer (`rebalance`): pass it over only briefly
    /// (``avoidMovedFrom``).
    package mutating func draining(slot: Int, suggested: [Endpoint], now: Double, rebalance: Bool = false) {
        if case .connected(let endpoint) = self.slots[slot] {
            self.movedAway[slot] = rebalance
            let avoid = rebalance ? Self.avoidMovedFrom : self.configuration.avoidDraining
            for endpoint in self.addresses(of: endpoint) {
                self.replicas[endpoint]?.avoidUntil = now + avoid
            }
        }
        // The last `reconnect` says where to go: an earlier one's suggestions no longer hold.
        for endpoint in self.order { self.replicas[endpoint]?.suggestedUntil = -.infinity }
        let until = now + self.configuration.avoidDraining
        for endpoint in suggested {
            self.touch(endpoint) {
                $0.learned = true
                $0.suggestedUntil = until
            }
        }
    }

    // MARK: A slot's life

    /// What `slot` should do now: dial a replica no other slot holds (before the car knows its
    /// gateways are a cluster: of a configured entry no other slot holds), preferring one that is
    /// not avoided (draining) and has failed least, chosen at random among equals (so a fleet's
    /// cars spread); or wait for the slot's backoff, a replica's, a draining one's avoidance while
    /// another tunnel is up, or a replica to become known.
    package mutating func next(slot: Int, now: Double, random: Double) -> Decision {
        precondition(self.slots.indices.contains(slot), "Internal inconsistency: no slot \(slot)")
        if self.slotReadyAt[slot] > now { return .wait(self.slotReadyAt[slot] - now) }
        let held = self.held
        var candidates = self.known.compactMap { self.replicas[$0] }.filter { !held.contains($0.endpoint) }
        if !self.clustered {
            // Not known to be a cluster: a name's records may be one gateway's addresses.
            let heldSources = self.slots.indices.filter { self.slots[$0] != .idle }.reduce(into: Set<Endpoint>()) {
                $0.formUnion(self.slotSources[$1])
            }
            candidates.removeAll { !$0.sources.isDisjoint(with: heldSources) }
        }
        guard !candidates.isEmpty else { return .wait(1) }
        // The same replica again (or a draining one) only when no other is known; a draining one
        // not at all while another tunnel is up (it would never hear its `reconnect`).
        let preferred = candidates.filter { $0.avoidUntil <= now }
        let othersUp = self.slots.indices.contains { $0 != slot && self.endpoint(of: $0) != nil }
        if preferred.isEmpty && othersUp { return .wait(candidates.map { $0.avoidUntil - now }.min()!) }
        let pool = preferred.isEmpty ? candidates : preferred
        let ready = pool.filter { $0.notBefore <= now }
        guard !ready.isEmpty else { return .wait(pool.map { $0.notBefore - now }.min()!) }
        let fewest = ready.map(\.failures).min()!
        var best = ready.filter { $0.failures == fewest }
        // A replica a gateway named is a replica for sure; a configured name may be a load balancer.
        if best.contains(where: \.learned) { best = best.filter(\.learned) }
        // The replica a `reconnect` named (issue #21: a replica moving cars to a newcomer).
        if best.contains(where: { $0.suggestedUntil > now }) { best = best.filter { $0.suggestedUntil > now } }
        let pick = best[min(best.count - 1, Int(random * Double(best.count)))]
        self.slots[slot] = .dialling(pick.endpoint)
        self.slotSources[slot] = pick.sources
        return .dial(pick.endpoint)
    }

    /// Seconds until `slot`'s own backoff has passed (0: it may dial now).
    package func slotDelay(slot: Int, now: Double) -> Double {
        max(0, self.slotReadyAt[slot] - now)
    }

    /// `slot`'s dial failed: the replica and the slot back off.
    package mutating func dialFailed(slot: Int, now: Double, random: Double) {
        if case .dialling(let endpoint) = self.slots[slot] { self.penalise(endpoint, now: now, random: random) }
        self.slots[slot] = .idle
        self.slotSources[slot] = []
        self.backOff(slot: slot, now: now, random: random)
    }

    /// `slot`'s tunnel is up (at `now`). The slot's backoff starts again from its first step only once
    /// the tunnel has stayed up ``stableSeconds`` (``lost(slot:now:random:)``).
    package mutating func connected(slot: Int, now: Double) {
        guard case .dialling(let endpoint) = self.slots[slot] else { return }
        self.slots[slot] = .connected(endpoint)
        self.replicas[endpoint]?.failures = 0
        self.replicas[endpoint]?.notBefore = -.infinity
        self.slotConnectedAt[slot] = now
    }

    /// Whether `slot`'s tunnel got as far as its hello (the gateway opened the status stream): a tunnel
    /// closed before it never joined — a TLS handshake refused, or not a FleetGate tunnel port.
    package func helloWritten(slot: Int) -> Bool { self.helloSent[slot] }

    /// The replicas the car's other tunnels reach (those past their hello), as the gateways name
    /// themselves when they did: a hello's or state's `elsewhere` on `slot`'s tunnel (issue #21).
    package func elsewhere(than slot: Int) -> [String] {
        let others = self.slots.indices.filter { $0 != slot && self.helloSent[$0] }.compactMap { other in
            self.target(of: other).map { self.replicas[$0]?.aliasOf ?? $0 }
        }
        return Set(others.map(\.description)).sorted()
    }

    /// The hello on `slot`'s tunnel is being written: it is primary when no other slot is.
    package mutating func claimPrimary(slot: Int) -> Bool {
        self.helloSent[slot] = true
        if self.primary == nil { self.primary = slot }
        return self.primary == slot
    }

    /// `slot`'s tunnel closed (the replica died, drained, or stopped answering PINGs): the replica
    /// backs off (unless it was draining: then it is avoided instead; or another slot's tunnel
    /// reaches it: then this was the second tunnel to it, which it replaced, and it is alive), the
    /// slot waits its jittered backoff, and the primary moves to a surviving tunnel.
    /// - Returns: the slot that became primary, whose tunnel must tell its gateway.
    package mutating func lost(slot: Int, now: Double, random: Double) -> Int? {
        defer { (self.helloSent[slot], self.slotSources[slot], self.movedAway[slot]) = (false, [], false) }
        defer { self.slotConnectedAt[slot] = nil }
        let duplicate = self.replica(of: slot).map { replica in
            self.slots.indices.contains { $0 != slot && self.replica(of: $0) == replica }
        }
        // A tunnel that stayed up, or a second one to a replica another tunnel holds, did not fail:
        // the slot starts its backoff again. One closed soon after it came up keeps climbing it.
        if let since = self.slotConnectedAt[slot], now - since >= Self.stableSeconds || duplicate == true {
            self.slotAttempts[slot] = 0
        }
        if case .connected(let endpoint) = self.slots[slot], duplicate != true {
            for endpoint in self.addresses(of: endpoint) where self.replicas[endpoint] != nil {
                // Drained: avoided, not failed — the tunnel that was told so. One that closed before its
                // hello while the replica is avoided failed (helper-104: behind a load balancer that
                // accepts while the gateway restarts, each such close reset the backoff: ~7 dials a
                // second for the 30 s of avoidance).
                if (self.replicas[endpoint]!.avoidUntil > now || self.movedAway[slot]) && self.helloSent[slot] {
                    self.slotAttempts[slot] = 0
                    continue
                }
                self.penalise(endpoint, now: now, random: random)
            }
        }
        self.slots[slot] = .idle
        self.backOff(slot: slot, now: now, random: random)
        guard self.primary == slot else { return nil }
        self.primary = self.slots.indices.first { if case .connected = self.slots[$0] { true } else { false } }
        return self.primary
    }

    // MARK: Internals

    private mutating func touch(_ endpoint: Endpoint, _ body: (inout Replica) -> Void) {
        if self.replicas[endpoint] == nil {
            self.replicas[endpoint] = Replica(endpoint: endpoint)
            self.order.append(endpoint)
        }
        body(&self.replicas[endpoint]!)
        // Bounded: a gateway cannot make the car remember without limit.
        if self.order.count > 64, let stale = self.order.first(where: { self.replicas[$0]?.known == false }) {
            self.order.removeAll { $0 == stale }
            self.replicas[stale] = nil
        }
    }

    private mutating func penalise(_ endpoint: Endpoint, now: Double, random: Double) {
        guard var replica = self.replicas[endpoint] else { return }
        let delay = self.configuration.backoff.delay(attempt: replica.failures, random: random)
        replica.failures += 1
        replica.notBefore = now + Double(delay.nanoseconds) / 1e9
        self.replicas[endpoint] = replica
    }

    private mutating func backOff(slot: Int, now: Double, random: Double) {
        let delay = self.configuration.backoff.delay(attempt: self.slotAttempts[slot], random: random)
        self.slotAttempts[slot] += 1
        self.slotReadyAt[slot] = now + Double(delay.nanoseconds) / 1e9
    }
}
