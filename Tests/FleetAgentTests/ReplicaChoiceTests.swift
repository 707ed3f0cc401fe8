import FleetAgent
import NIOCore
import Testing

/// Issue #21: which replica a car's tunnel dials next, and which tunnel is primary — plain values, no sockets.
@Suite("Replica choice")
struct ReplicaChoiceTests {
    typealias Endpoint = ReplicaChoice.Endpoint
    static let a = Endpoint(host: "10.0.0.1", port: 7443)
    static let b = Endpoint(host: "10.0.0.2", port: 7443)
    static let c = Endpoint(host: "10.0.0.3", port: 7443)

    static func choice(_ configured: [Endpoint], tunnels: Int = 2) -> ReplicaChoice {
        ReplicaChoice(
            configuration: .init(
                tunnels: tunnels, backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(30)),
                avoidDraining: 30),
            configured: configured)
    }

    /// Dials and connects every slot at `now`, returning the endpoint of each.
    static func connectAll(_ choice: inout ReplicaChoice, now: Double = 0) -> [Endpoint] {
        (0..<choice.configuration.tunnels).map { slot in
            guard case .dial(let endpoint) = choice.next(slot: slot, now: now, random: 0) else {
                Issue.record("slot \(slot) has nothing to dial")
                return Endpoint(host: "-", port: 1)
            }
            choice.connected(slot: slot, now: now)
            return endpoint
        }
    }

    /// Slot 0 dials, connects and loses its tunnel 10 ms later, `times` times, each after its backoff;
    /// returns each backoff (`now` moves past them).
    static func closedAtOnce(_ choice: inout ReplicaChoice, times: Int, now: inout Double) -> [Double] {
        (0..<times).map { _ in
            guard case .dial = choice.next(slot: 0, now: now, random: 0) else {
                Issue.record("slot 0 has nothing to dial at \(now)")
                return 0
            }
            choice.connected(slot: 0, now: now)
            _ = choice.lost(slot: 0, now: now + 0.01, random: 0)
            let wait = choice.slotDelay(slot: 0, now: now + 0.01)
            now += 0.01 + wait + 0.001
            return wait
        }
    }

    /// A gateway that accepts the connection and then refuses the car (a region its map no longer has)
    /// closed the tunnel at once; the connection had reset the slot's backoff, so it dialled again at
    /// the first step, six times a second.
    @Test("A tunnel closed soon after it came up keeps the slot's backoff growing; one that stayed up resets it")
    func shortLivedTunnels() {
        var choice = Self.choice([Self.a], tunnels: 1)
        var now = 0.0
        let waits = Self.closedAtOnce(&choice, times: 6, now: &now)
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 < $1 }, "\(waits)")
        #expect(waits.last! > 3, "\(waits)")
        // Up for longer than stableSeconds, then lost: back to the first step.
        guard case .dial = choice.next(slot: 0, now: now, random: 0) else { return #expect(Bool(false)) }
        choice.connected(slot: 0, now: now)
        _ = choice.lost(slot: 0, now: now + ReplicaChoice.stableSeconds, random: 0)
        #expect(choice.slotDelay(slot: 0, now: now + ReplicaChoice.stableSeconds) < waits[1], "\(waits)")
    }

    @Test("Two tunnels go to two distinct replicas, never the same one twice")
    func distinct() {
        var choice = Self.choice([Self.a, Self.b, Self.c])
        let endpoints = Self.connectAll(&choice)
        #expect(Set(endpoints).count == 2)
        var single = Self.choice([Self.a])
        let result37 = single.next(slot: 0, now: 0, random: 0)
        #expect(result37 == .dial(Self.a))
        single.connected(slot: 0, now: 0)
        let result40 = single.next(slot: 1, now: 0, random: 0)  // one replica known: one tunnel
        #expect(result40 == .wait(1))
    }

    @Test("After a loss the slot waits its jittered backoff, then dials a replica it is not connected to")
    func redialsElsewhere() {
        var choice = Self.choice([Self.a, Self.b, Self.c])
        #expect(Self.connectAll(&choice) == [Self.a, Self.b])
        _ = choice.lost(slot: 0, now: 10, random: 0.5)
        #expect(choice.failures(of: Self.a) == 1)
        // Attempt 0 of the slot: 150 ms at random 0.5 (uniform over [100, 200] ms).
        guard case .wait(let wait) = choice.next(slot: 0, now: 10, random: 0) else { return #expect(Bool(false)) }
        #expect(abs(wait - 0.15) < 1e-9)
        let result52 = choice.next(slot: 0, now: 10.2, random: 0)
        #expect(result52 == .dial(Self.c))  // not A (lost), not B (held)
    }

    @Test("The same replica again only when no other is known, after its own backoff")
    func fallsBackToTheSame() {
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        _ = choice.lost(slot: 0, now: 0, random: 0)  // A: backoff 100 ms; slot: 100 ms
        let result61 = choice.next(slot: 0, now: 0.1, random: 0)
        #expect(result61 == .dial(Self.a))
        choice.dialFailed(slot: 0, now: 0.1, random: 0)  // A refused again: 200 ms, the slot 200 ms
        guard case .wait(let wait) = choice.next(slot: 0, now: 0.2, random: 0) else { return #expect(Bool(false)) }
        #expect(abs(wait - 0.1) < 1e-9)
        let result66 = choice.next(slot: 0, now: 0.31, random: 0)
        #expect(result66 == .dial(Self.a))
    }

    @Test(
        "Behind a load balancer, tunnels that close before their hello while the replica drains keep the backoff growing"
    )
    func drainedBehindABalancer() {
        var choice = Self.choice([Self.a], tunnels: 1)
        _ = Self.connectAll(&choice)
        _ = choice.claimPrimary(slot: 0)
        choice.draining(slot: 0, suggested: [], now: 0)
        _ = choice.lost(slot: 0, now: 0, random: 0)  // the drained tunnel: avoided, not failed
        #expect(choice.slotDelay(slot: 0, now: 0) <= 0.2)
        // The balancer accepts; the restarting gateway behind it does not: closed before the hello.
        var now = 0.2
        let waits = Self.closedAtOnce(&choice, times: 6, now: &now)
        #expect(zip(waits, waits.dropFirst()).allSatisfy { $0 < $1 }, "\(waits)")
        #expect(now > 6 && now < 30, "\(waits)")
    }

    @Test("A draining replica is passed over while another is known, and used when it is the only one")
    func draining() {
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        choice.draining(slot: 1, suggested: [Self.c], now: 0)  // B drains and names C
        _ = choice.lost(slot: 1, now: 1, random: 0)
        let result76 = choice.next(slot: 1, now: 2, random: 0)
        #expect(result76 == .dial(Self.c))
        choice.dialFailed(slot: 1, now: 2, random: 0)
        // C refused and A held: B (draining) is the only one ready... C waits out its backoff first.
        let result80 = choice.next(slot: 1, now: 2.2, random: 0)
        #expect(result80 == .dial(Self.c))
        var lone = Self.choice([Self.a], tunnels: 1)
        _ = Self.connectAll(&lone)
        lone.draining(slot: 0, suggested: [], now: 0)
        _ = lone.lost(slot: 0, now: 0, random: 0)
        let result86 = lone.next(slot: 0, now: 0.2, random: 0)  // no other: the same one
        #expect(result86 == .dial(Self.a))
    }

    @Test(
        "A replica moving cars to a newcomer names it: the tunnel goes there, not to another replica it knows",
        arguments: [0.0, 0.5, 0.99])
    func movedToTheNamedReplica(random: Double) {
        let d = Endpoint(host: "10.0.0.4", port: 7443)
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        choice.learned([Self.b, Self.c, d], from: Self.a, slot: 0)
        choice.draining(slot: 0, suggested: [d], now: 0)  // A moves this tunnel to D
        _ = choice.lost(slot: 0, now: 0.1, random: random)
        var expired = choice
        var redirected = choice
        #expect(choice.next(slot: 0, now: 1, random: random) == .dial(d))
        // A later `reconnect` (slot 1's replica B names C) replaces the earlier suggestion.
        redirected.draining(slot: 1, suggested: [Self.c], now: 0.5)
        #expect(redirected.next(slot: 0, now: 1, random: random) == .dial(Self.c))
        // The preference lasts as long as the avoidance: later, the first of the others (D is the last known).
        #expect(expired.next(slot: 0, now: 40, random: 0) != .dial(d))
    }

    @Test("A tunnel moved away is no failure of its replica, however long its last streams took")
    func movedAwayIsNoFailure() {
        var choice = Self.choice([Self.a, Self.b, Self.c])
        _ = Self.connectAll(&choice)  // A and B
        _ = choice.claimPrimary(slot: 0)
        choice.draining(slot: 0, suggested: [Self.b], now: 0, rebalance: true)
        _ = choice.lost(slot: 0, now: 10, random: 0)  // its streams took 10 s, past the 2 s
        // A and C alike (no failure): the first; a penalised A would have left C.
        #expect(choice.next(slot: 0, now: 11, random: 0) == .dial(Self.a))
    }

    @Test("A tunnel says where the car's other tunnels are: past their hello, by the replica's own name")
    func elsewhere() {
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        #expect(choice.elsewhere(than: 0).isEmpty, "no other hello yet")
        _ = choice.claimPrimary(slot: 0)
        _ = choice.claimPrimary(slot: 1)
        #expect(choice.elsewhere(than: 0) == ["10.0.0.2:7443"] && choice.elsewhere(than: 1) == ["10.0.0.1:7443"])
        // B names itself otherwise (it was dialled through another address): its name is said.
        let named = Endpoint(host: "10.9.0.2", port: 7443)
        choice.learned([], from: named, slot: 1)
        #expect(choice.elsewhere(than: 0) == ["10.9.0.2:7443"])
        _ = choice.lost(slot: 1, now: 1, random: 0)
        #expect(choice.elsewhere(than: 0).isEmpty)
    }

    @Test("A tunnel moved to a replica the car's other tunnel holds dials another after 2 s, not 30 s")
    func movedToAHeldReplica() {
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        choice.learned([Self.b], from: Self.a, slot: 0)
        // Two replicas: A moves slot 0's tunnel to B, which slot 1 holds (another replica moved the
        // car's other tunnel there first).
        var drained = choice
        choice.draining(slot: 0, suggested: [Self.b], now: 0, rebalance: true)
        _ = choice.lost(slot: 0, now: 0.1, random: 0)
        #expect(choice.next(slot: 0, now: 0.5, random: 0) == .wait(1.5))
        #expect(choice.next(slot: 0, now: 2.1, random: 0) == .dial(Self.a))
        // A drain's reconnect: the sender is passed over for the 30 s.
        drained.draining(slot: 0, suggested: [Self.b], now: 0)
        _ = drained.lost(slot: 0, now: 0.1, random: 0)
        guard case .wait(let wait) = drained.next(slot: 0, now: 2.1, random: 0) else {
            Issue.record("a drained replica was dialled within its avoidance")
            return
        }
        #expect(wait > 27)
    }

    @Test("In a cluster every record of a host name is a replica; a record that disappears is forgotten")
    func resolvedNames() {
        var choice = Self.choice([])
        choice.resolved(name: "gw.example", port: 7443, addresses: ["10.0.0.1", "10.0.0.2"])
        let first = choice.next(slot: 0, now: 0, random: 0)
        #expect(first == .dial(Self.a))
        choice.connected(slot: 0, now: 0)
        choice.learned([], from: nil, slot: 0)  // a `replicas`: the gateways are a cluster
        let second = choice.next(slot: 1, now: 0, random: 0)
        #expect(second == .dial(Self.b))
        choice.connected(slot: 1, now: 0)
        choice.resolved(name: "gw.example", port: 7443, addresses: ["10.0.0.2", "10.0.0.3"])
        #expect(Set(choice.known) == [Self.b, Self.c])
        _ = choice.lost(slot: 0, now: 0, random: 0)
        let result98 = choice.next(slot: 0, now: 1, random: 0)
        #expect(result98 == .dial(Self.c))
    }

    @Test("Replicas a gateway names are learned, preferred over a configured name, and its own name is held")
    func learned() {
        let vip = Endpoint(host: "gw.example", port: 7443)
        var choice = Self.choice([vip])
        let result106 = choice.next(slot: 0, now: 0, random: 0)
        #expect(result106 == .dial(vip))
        choice.connected(slot: 0, now: 0)
        let result109 = choice.next(slot: 1, now: 0, random: 0)
        #expect(result109 == .wait(1))
        // Through the load balancer the car reached A, which names B and C.
        choice.learned([Self.b, Self.c], from: Self.a, slot: 0)
        #expect(choice.held.contains(Self.a))
        guard case .dial(let second) = choice.next(slot: 1, now: 0, random: 0.9) else { return #expect(Bool(false)) }
        #expect([Self.b, Self.c].contains(second))
        // A later list without C forgets C.
        choice.connected(slot: 1, now: 0)
        choice.learned([second], from: Self.a, slot: 0)
        #expect(!choice.known.contains(second == Self.b ? Self.c : Self.b))
    }

    @Test("Not known to be a cluster: one tunnel per configured entry, not per record of a name")
    func configuredEntries() {
        // One gateway with two addresses behind one name (a multi-AZ load balancer), no `replicas` ever.
        var choice = Self.choice([])
        choice.resolved(name: "lb.example", port: 7443, addresses: ["10.0.0.1", "10.0.0.2"])
        let first = choice.next(slot: 0, now: 0, random: 0)
        #expect(first == .dial(Self.a))
        choice.connected(slot: 0, now: 0)
        let second = choice.next(slot: 1, now: 0, random: 0)
        #expect(second == .wait(1))  // the other record may be the same gateway: no second tunnel
        _ = choice.lost(slot: 0, now: 0, random: 0)
        let again = choice.next(slot: 0, now: 1, random: 0)
        #expect(again == .dial(Self.b))  // but a lost tunnel moves to another record
        choice.connected(slot: 0, now: 0)
        let still = choice.next(slot: 1, now: 1, random: 0)
        #expect(still == .wait(1))
        // Two entries (an address and the name) and three slots: two tunnels, one per entry.
        var two = Self.choice([Self.c], tunnels: 3)
        two.resolved(name: "lb.example", port: 7443, addresses: ["10.0.0.1", "10.0.0.2"])
        let endpoints = (0..<2).map { slot in
            defer { two.connected(slot: slot, now: 0) }
            return two.next(slot: slot, now: 0, random: 0)
        }
        #expect(endpoints == [.dial(Self.c), .dial(Self.a)])
        let third = two.next(slot: 2, now: 0, random: 0)
        #expect(third == .wait(1))
        // Once a gateway has said it is one of a cluster (`replicas`), each record is a replica.
        choice.learned([], from: nil, slot: 0)
        let clustered = choice.next(slot: 1, now: 1, random: 0)
        #expect(clustered == .dial(Self.a))
    }

    @Test(
        "Two tunnels that reach one replica: the one it replaced closes, in either order, and is no failure; its address is an alias never dialled",
        arguments: [0, 1])
    func sameReplicaTwice(replaced: Int) {
        // A and B are two addresses of one gateway, which calls itself A. Which hello the gateway read
        // last is its own: two tunnels are two paths, so either slot's may be the one it replaced.
        var choice = Self.choice([Self.a, Self.b])
        #expect(Self.connectAll(&choice) == [Self.a, Self.b])
        let slot0Primary = choice.claimPrimary(slot: 0)
        #expect(slot0Primary)
        let slot1Primary = choice.claimPrimary(slot: 1)
        #expect(!slot1Primary)
        choice.learned([], from: Self.a, slot: 0)
        choice.learned([], from: Self.a, slot: 1)
        #expect(choice.held == [Self.a, Self.b])
        let survivor = 1 - replaced
        // The gateway's GOAWAY closes the replaced one; the primary flag, if it held it, moves.
        let promoted = choice.lost(slot: replaced, now: 0, random: 0)
        #expect(promoted == (replaced == 0 ? 1 : nil))
        // Not a failure: neither address backs off (a lost tunnel's replica does: `redialsElsewhere`).
        #expect(choice.failures(of: Self.a) == 0 && choice.failures(of: Self.b) == 0)
        let next = choice.next(slot: replaced, now: 2, random: 0)
        #expect(next == .wait(1))  // neither address: both are the replica the survivor holds
        // A replica it has no tunnel to becomes known: the slot goes there.
        choice.learned([Self.c], from: Self.a, slot: survivor)
        let other = choice.next(slot: replaced, now: 2, random: 0)
        #expect(other == .dial(Self.c))
    }

    @Test("A `replicas` heard before the dial's task saw its tunnel up still makes its address an alias")
    func learnedWhileDialling() {
        var choice = Self.choice([Self.a, Self.b])
        let first = choice.next(slot: 0, now: 0, random: 0)
        #expect(first == .dial(Self.a))
        choice.connected(slot: 0, now: 0)
        choice.learned([], from: Self.a, slot: 0)
        let second = choice.next(slot: 1, now: 0, random: 0)
        #expect(second == .dial(Self.b))
        choice.learned([], from: Self.a, slot: 1)  // B is A; the gateway replaces slot 0's tunnel
        choice.connected(slot: 1, now: 0)
        #expect(choice.held == [Self.a, Self.b])
        _ = choice.lost(slot: 0, now: 0, random: 0)
        #expect(choice.failures(of: Self.a) == 0)
        let next = choice.next(slot: 0, now: 2, random: 0)
        #expect(next == .wait(1))
        // The replica drains and names C: slot 0 goes there, and once slot 1's tunnel is gone the
        // draining replica is avoided by both its addresses, its own name A too.
        choice.draining(slot: 1, suggested: [Self.c], now: 2)
        let toC = choice.next(slot: 0, now: 2, random: 0)
        #expect(toC == .dial(Self.c))
        choice.connected(slot: 0, now: 2)
        _ = choice.lost(slot: 1, now: 3, random: 0)
        let afterDrain = choice.next(slot: 1, now: 4, random: 0)
        #expect(afterDrain != .dial(Self.a) && afterDrain != .dial(Self.b), "\(afterDrain)")
    }

    @Test("A draining replica is waited out, not re-dialled, while another tunnel is up")
    func drainingWaitedOut() {
        var choice = Self.choice([Self.a, Self.b])
        _ = Self.connectAll(&choice)
        choice.draining(slot: 0, suggested: [], now: 0)  // A drains (avoided for 30 s); B is held
        _ = choice.lost(slot: 0, now: 1, random: 0)
        guard case .wait(let wait) = choice.next(slot: 0, now: 2, random: 0) else { return #expect(Bool(false)) }
        #expect(abs(wait - 28) < 1e-9)
        let later = choice.next(slot: 0, now: 30, random: 0)
        #expect(later == .dial(Self.a))
    }

    @Test("The name to verify on a replica's certificate is the name its address came from")
    func resolvedName() {
        var choice = Self.choice([Self.c])
        choice.resolved(name: "a.example", port: 7443, addresses: ["10.0.0.1"])
        choice.resolved(name: "b.example", port: 7443, addresses: ["10.0.0.2"])
        #expect(choice.resolvedName(of: Self.a) == "a.example")
        #expect(choice.resolvedName(of: Self.b) == "b.example")
        #expect(choice.resolvedName(of: Self.c) == nil)
    }

    @Test("The primary flag: claimed by the first hello, moved to the surviving tunnel when it goes")
    func primary() {
        var choice = Self.choice([Self.a, Self.b, Self.c])
        _ = Self.connectAll(&choice)
        let result126 = choice.claimPrimary(slot: 0)
        #expect(result126)
        let result128 = choice.claimPrimary(slot: 1)
        #expect(!result128)
        let result130 = choice.lost(slot: 1, now: 0, random: 0)  // the secondary went: nothing moves
        #expect(result130 == nil)
        let result132 = choice.next(slot: 1, now: 1, random: 0)
        #expect(result132 == .dial(Self.c))
        choice.connected(slot: 1, now: 0)
        let result135 = choice.claimPrimary(slot: 1)
        #expect(!result135)
        let result137 = choice.lost(slot: 0, now: 2, random: 0)  // the primary went: slot 1 takes over
        #expect(result137 == 1)
        let result139 = choice.claimPrimary(slot: 1)
        #expect(result139)
        let result141 = choice.lost(slot: 1, now: 3, random: 0)  // none left: the next hello claims it
        #expect(result141 == nil)
        #expect(choice.primary == nil)
    }
}

@Suite("Replica directory")
struct ReplicaDirectoryTests {
    @Test(
        "A host name resolves to its addresses of one family: localhost is one replica, not two",
        .timeLimit(.minutes(1)))
    func resolve() async throws {
        #expect(try await ReplicaDirectory.resolve("localhost") == ["127.0.0.1"])
    }

    @Test("Host names are resolved before a dial and each record becomes a replica", .timeLimit(.minutes(1)))
    func refresh() async {
        let directory = ReplicaDirectory(
            configuration: .init(tunnels: 2, backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(30))),
            configured: [.init(host: "gw.example", port: 7443), .init(host: "10.0.0.9", port: 7443)],
            resolver: { _ in ["10.0.0.1", "10.0.0.2"] }, clock: { 0 })
        #expect(directory.withChoice { $0.known } == [.init(host: "10.0.0.9", port: 7443)])
        await directory.refresh(maxAge: 0)
        #expect(Set(directory.withChoice { $0.known }.map(\.host)) == ["10.0.0.9", "10.0.0.1", "10.0.0.2"])
        #expect(directory.firstName == "gw.example")
    }

    @Test("TLS: each address is verified against the name it was resolved from", .timeLimit(.minutes(1)))
    func serverHostname() async {
        let directory = ReplicaDirectory(
            configuration: .init(tunnels: 2, backoff: Backoff(initial: .milliseconds(200), maximum: .seconds(30))),
            configured: [
                .init(host: "a.example", port: 7443), .init(host: "b.example", port: 7443),
                .init(host: "10.0.0.9", port: 7443),
            ],
            resolver: { $0 == "a.example" ? ["10.0.0.1"] : ["10.0.0.2"] }, clock: { 0 })
        await directory.refresh(maxAge: 0)
        let told: [ReplicaChoice.Endpoint] = [
            .init(host: "10.0.0.5", port: 7443), .init(host: "gw-3.example", port: 7443),
        ]
        directory.learned(told, from: nil, slot: 0)
        #expect(directory.serverHostname(for: .init(host: "10.0.0.1", port: 7443)) == "a.example")
        #expect(directory.serverHostname(for: .init(host: "10.0.0.2", port: 7443)) == "b.example")
        #expect(directory.serverHostname(for: .init(host: "10.0.0.9", port: 7443)) == nil)  // its own IP
        #expect(directory.serverHostname(for: .init(host: "gw-3.example", port: 7443)) == nil)  // itself
        // An IP address a gateway told: the cluster's name.
        #expect(directory.serverHostname(for: .init(host: "10.0.0.5", port: 7443)) == "a.example")
    }
}
