import Testing

@testable import FleetGate

/// Issue #21, scaling out: when a replica moves tunnels — hold-down and arrivals, on a clock of its own.
@Suite("Tunnel rebalancing over time")
struct TunnelRebalancingTests {
    typealias Peer = TunnelBalance.Peer
    typealias Move = TunnelBalance.Move

    static func rebalancing() -> TunnelRebalancing {
        TunnelRebalancing(balance: TunnelBalance(address: "a"), holdSeconds: 40)
    }

    /// A look at "eu" whose moves are made (all of them, as the cars were idle).
    static func round(_ r: inout TunnelRebalancing, own: Int, _ peers: [Peer], now: Double) -> TunnelRebalancing.Look {
        let look = r.look(region: "eu", own: own, peers: peers, budget: 32, rotation: 0, now: now)
        r.moved(region: "eu", look.moves, peers: peers)
        return look
    }

    @Test("Nothing moves until the region has looked out of balance for the hold-down; a break starts it again")
    func holdDown() {
        var r = Self.rebalancing()
        let newcomer = [Peer(address: "b", tunnels: 60), Peer(address: "c", tunnels: 0)]
        #expect(r.look(region: "eu", own: 60, peers: newcomer, budget: 32, rotation: 0, now: 0).moves.isEmpty)
        #expect(r.look(region: "eu", own: 60, peers: newcomer, budget: 32, rotation: 0, now: 39).moves.isEmpty)
        // In balance for a moment (the newcomer's own cars arrived, then left): the hold-down starts again.
        let balanced = [Peer(address: "b", tunnels: 60), Peer(address: "c", tunnels: 60)]
        #expect(r.look(region: "eu", own: 60, peers: balanced, budget: 32, rotation: 0, now: 39.5).moves.isEmpty)
        #expect(r.look(region: "eu", own: 60, peers: newcomer, budget: 32, rotation: 0, now: 41).moves.isEmpty)
        #expect(
            r.look(region: "eu", own: 60, peers: newcomer, budget: 32, rotation: 0, now: 81).moves == [
                Move(address: "c", count: 20)
            ])
        // Regions are held down apart.
        #expect(r.look(region: "us", own: 60, peers: newcomer, budget: 32, rotation: 0, now: 81).moves.isEmpty)
    }

    @Test("Once moving, every round moves while the imbalance lasts, each after its arrivals are seen")
    func rounds() {
        var r = Self.rebalancing()
        var peers = [Peer(address: "b", tunnels: 1_000), Peer(address: "c", tunnels: 0)]
        _ = r.look(region: "eu", own: 1_000, peers: peers, budget: 32, rotation: 0, now: 0)
        let first = r.look(region: "eu", own: 1_000, peers: peers, budget: 32, rotation: 0, now: 40)
        #expect(first.moves == [Move(address: "c", count: 32)])
        r.moved(region: "eu", first.moves, peers: peers)
        // Five seconds on, C has them (and B's): no hold-down again, and no warning.
        peers[1].tunnels = 64
        let second = r.look(region: "eu", own: 968, peers: peers, budget: 32, rotation: 0, now: 45)
        #expect(second.moves == [Move(address: "c", count: 32)] && second.unarrived.isEmpty)
    }

    @Test("A replica the moved cars never reach is passed over for 5 minutes after two rounds, said once")
    func unarrived() {
        var r = Self.rebalancing()
        let peers = [Peer(address: "b", tunnels: 100), Peer(address: "c", tunnels: 0)]
        _ = Self.round(&r, own: 100, peers, now: 0)
        let first = Self.round(&r, own: 100, peers, now: 40)
        // C still has none: one miss is no proof (it may have lost a car meanwhile); it is named again.
        let second = Self.round(&r, own: 100, peers, now: 45)
        #expect(second.unarrived.isEmpty && second.moves == first.moves)
        // A second miss: said, and passed over — with C out of the picture A and B are in balance.
        let third = r.look(region: "eu", own: 100, peers: peers, budget: 32, rotation: 0, now: 50)
        #expect(third.unarrived == [Peer(address: "c", tunnels: 0)] && third.moves.isEmpty)
        let fourth = r.look(region: "eu", own: 100, peers: peers, budget: 32, rotation: 0, now: 55)
        #expect(fourth.unarrived.isEmpty && fourth.moves.isEmpty)
        // Only in this region: another still names C.
        _ = r.look(region: "us", own: 100, peers: peers, budget: 32, rotation: 0, now: 55)
        #expect(!r.look(region: "us", own: 100, peers: peers, budget: 32, rotation: 0, now: 95).moves.isEmpty)
        // Five minutes on, C is tried again (after a new hold-down).
        r.begin(held: ["eu", "us"], now: 351)
        #expect(r.skipped.isEmpty)
        _ = r.look(region: "eu", own: 100, peers: peers, budget: 32, rotation: 0, now: 351)
        #expect(!r.look(region: "eu", own: 100, peers: peers, budget: 32, rotation: 0, now: 391).moves.isEmpty)
    }

    @Test("Moved cars that arrive clear a miss: two misses must come in a row")
    func missThenArrival() {
        var r = Self.rebalancing()
        var peers = [Peer(address: "b", tunnels: 1_000), Peer(address: "c", tunnels: 0)]
        _ = Self.round(&r, own: 1_000, peers, now: 0)
        _ = Self.round(&r, own: 1_000, peers, now: 40)
        _ = Self.round(&r, own: 1_000, peers, now: 45)  // a miss
        peers[1].tunnels = 32  // they arrived
        _ = Self.round(&r, own: 968, peers, now: 50)
        let look = r.look(region: "eu", own: 968, peers: peers, budget: 32, rotation: 0, now: 55)  // a miss again
        #expect(look.unarrived.isEmpty && !look.moves.isEmpty)
    }

    @Test("A region this replica no longer holds tunnels of is forgotten")
    func forgotten() {
        var r = Self.rebalancing()
        _ = r.look(region: "eu", own: 100, peers: [Peer(address: "b", tunnels: 0)], budget: 32, rotation: 0, now: 0)
        #expect(r.unbalancedSince["eu"] == 0)
        r.begin(held: ["us"], now: 1)
        #expect(r.unbalancedSince.isEmpty)
    }
}
