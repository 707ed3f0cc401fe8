import FleetScheduler
import Testing

@testable import FleetGate

/// Issue #21, scaling out: how many car tunnels a replica moves, and where — counts in, moves out.
@Suite("Tunnel balance")
struct TunnelBalanceTests {
    typealias Peer = TunnelBalance.Peer
    typealias Move = TunnelBalance.Move

    /// Every replica plans from the same counts at once (as they do, a digest apart); returns the
    /// counts after every move lands.
    static func settle(_ counts: [String: Int], maxMoves: Int = 1_000) -> [String: Int] {
        var after = counts
        let balance = TunnelBalance(maxMoves: maxMoves)
        for (replica, own) in counts {
            let peers = counts.filter { $0.key != replica }.map { Peer(address: $0.key, tunnels: $0.value) }
            for move in balance.plan(own: own, peers: peers) {
                after[replica]! -= move.count
                after[move.address]! += move.count
            }
        }
        return after
    }

    @Test("A newcomer gets the share the others hold above theirs, spread in proportion to what each lacks")
    func newcomer() {
        let balance = TunnelBalance(maxMoves: 1_000)
        #expect(
            balance.plan(own: 60, peers: [Peer(address: "b", tunnels: 60), Peer(address: "c", tunnels: 0)]) == [
                Move(address: "c", count: 20)
            ])
        // Two newcomers lacking 20 and 10 of the share of 20: the 10 over go 7 (6⅔) and 3 (3⅓).
        #expect(
            balance.plan(
                own: 30,
                peers: [
                    Peer(address: "n1", tunnels: 0), Peer(address: "n2", tunnels: 10),
                    Peer(address: "o", tunnels: 40),
                ])
                == [Move(address: "n1", count: 7), Move(address: "n2", count: 3)])
    }

    @Test(
        "Replicas deciding at once end within one of each other, and a balanced cluster moves nothing",
        arguments: [
            ["a": 100, "b": 100, "c": 0],
            ["a": 100, "b": 100, "c": 0, "d": 0],
            ["a": 7, "b": 0],
            ["a": 1_000, "b": 3, "c": 500, "d": 0, "e": 250],
            ["a": 5, "b": 4, "c": 4],
        ])
    func converges(_ counts: [String: Int]) {
        let after = Self.settle(counts)
        #expect(after.values.reduce(0, +) == counts.values.reduce(0, +))
        let fair = (counts.values.reduce(0, +) + counts.count - 1) / counts.count
        // Nobody ends above the share, and the share is at most one above the floor of the mean.
        #expect(after.values.allSatisfy { $0 <= fair }, "\(after)")
        #expect(after.values.max()! - after.values.min()! <= counts.count, "\(after)")
        #expect(Self.settle(after) == after, "a second round moves nothing: \(after)")
    }

    @Test("A difference of one is no reason to move; no peers, nothing here or a limit of 0 moves nothing")
    func nothingToMove() {
        let balance = TunnelBalance(maxMoves: 32)
        #expect(balance.plan(own: 5, peers: [Peer(address: "b", tunnels: 4)]).isEmpty)
        #expect(balance.plan(own: 50, peers: []).isEmpty)
        #expect(balance.plan(own: 0, peers: [Peer(address: "b", tunnels: 0)]).isEmpty)
        #expect(TunnelBalance(maxMoves: 0).plan(own: 50, peers: [Peer(address: "b", tunnels: 0)]).isEmpty)
        #expect(balance.plan(own: 6, peers: [Peer(address: "b", tunnels: 4)]) == [Move(address: "b", count: 1)])
    }

    @Test("A round moves at most maxMoves")
    func bounded() {
        let moves = TunnelBalance(maxMoves: 32).plan(
            own: 10_000, peers: [Peer(address: "b", tunnels: 0), Peer(address: "c", tunnels: 0)])
        #expect(moves.reduce(0) { $0 + $1.count } == 32)
        #expect(moves == [Move(address: "b", count: 16), Move(address: "c", count: 16)])
    }

    @Test("Only idle tunnels move, secondary ones first, never one already told to leave")
    func choice() {
        let tunnels = [
            TunnelBalance.Tunnel(car: CarID(1), primary: true, inFlight: 0, draining: false),
            TunnelBalance.Tunnel(car: CarID(2), primary: false, inFlight: 2, draining: false),
            TunnelBalance.Tunnel(car: CarID(3), primary: false, inFlight: 0, draining: true),
            TunnelBalance.Tunnel(car: CarID(4), primary: true, inFlight: 0, draining: false),
            TunnelBalance.Tunnel(car: CarID(5), primary: false, inFlight: 0, draining: false),
        ]
        #expect(TunnelBalance.choose(2, from: tunnels) == [CarID(5), CarID(1)])
        #expect(TunnelBalance.choose(10, from: tunnels) == [CarID(5), CarID(1), CarID(4)])
        #expect(TunnelBalance.choose(0, from: tunnels).isEmpty)
    }
}
