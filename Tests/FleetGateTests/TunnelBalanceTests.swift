import FleetScheduler
import Testing

@testable import FleetGate

/// Issue #21, scaling out: how many car tunnels a replica moves, and where — counts in, moves out.
@Suite("Tunnel balance")
struct TunnelBalanceTests {
    typealias Peer = TunnelBalance.Peer
    typealias Move = TunnelBalance.Move

    /// Every replica plans from the same counts at once (as they do, a digest apart), each with its
    /// own rotation; returns the counts after every move lands.
    static func settle(_ counts: [String: Int], budget: Int = 1_000_000) -> [String: Int] {
        var after = counts
        for (index, (replica, own)) in counts.sorted(by: { $0.key < $1.key }).enumerated() {
            let peers = counts.filter { $0.key != replica }.map { Peer(address: $0.key, tunnels: $0.value) }
            for move in TunnelBalance(address: replica).plan(own: own, peers: peers, budget: budget, rotation: index) {
                after[replica]! -= move.count
                after[move.address]! += move.count
            }
        }
        return after
    }

    @Test("A newcomer gets what the others hold above their targets, spread in proportion to what each lacks")
    func newcomer() {
        let a = TunnelBalance(address: "a")
        // 120 over three: 40 each; A gives its 20 to C.
        #expect(
            a.plan(own: 60, peers: [Peer(address: "b", tunnels: 60), Peer(address: "c", tunnels: 0)], budget: 100)
                == [Move(address: "c", count: 20)])
        // 80 over four: 20 each; n1 lacks 20, n2 10: A's 10 over go 7 (6⅔) and 3 (3⅓).
        #expect(
            a.plan(
                own: 30,
                peers: [
                    Peer(address: "n1", tunnels: 0), Peer(address: "n2", tunnels: 10),
                    Peer(address: "o", tunnels: 40),
                ], budget: 100)
                == [Move(address: "n1", count: 7), Move(address: "n2", count: 3)])
    }

    @Test(
        "Replicas deciding at once come within the tolerance of each other in a round or two, then move nothing",
        arguments: [
            ["a": 100, "b": 100, "c": 0],
            ["a": 100, "b": 100, "c": 0, "d": 0],
            ["a": 7, "b": 0],
            ["a": 1_000, "b": 3, "c": 500, "d": 0, "e": 250],
            ["a": 3, "b": 3, "c": 3, "d": 3, "e": 0],
            ["a": 5, "b": 5, "c": 5, "d": 5, "p": 3, "q": 1],
            ["a": 10_000, "b": 10_000, "c": 0],
        ])
    func converges(_ counts: [String: Int]) {
        var rounds = [counts]
        while rounds.count < 4 { rounds.append(Self.settle(rounds.last!)) }
        let after = rounds.last!
        let total = counts.values.reduce(0, +)
        #expect(after.values.reduce(0, +) == total)
        let tolerance = max(1, total / counts.count / 20)
        #expect(after.values.max()! - after.values.min()! <= tolerance + 1, "\(rounds)")
        #expect(Self.settle(after) == after, "a further round moves nothing: \(rounds)")
        // Never more than two rounds: the first moves nearly all, the second the rounding.
        #expect(rounds[2] == after, "\(rounds)")
    }

    @Test("Donors deciding at once spread their rounding remainders: no receiver ends more than one over its target")
    func remainders() {
        // Four donors one over the target of 4 each; p lacks 1, q 3: with every remainder at the same
        // place p would get all four (7 against 4).
        let after = Self.settle(["a": 5, "b": 5, "c": 5, "d": 5, "p": 3, "q": 1])
        #expect(after.values.allSatisfy { $0 <= 5 }, "\(after)")
    }

    @Test("A car that connects or leaves moves nothing; no peers, nothing here or no budget moves nothing")
    func nothingToMove() {
        let b = TunnelBalance(address: "b")
        // Balanced, then one car more on B: within the tolerance.
        #expect(b.plan(own: 5, peers: [Peer(address: "a", tunnels: 4)], budget: 32).isEmpty)
        #expect(
            b.plan(own: 4, peers: [Peer(address: "a", tunnels: 3), Peer(address: "c", tunnels: 3)], budget: 32).isEmpty)
        // 5 % of a mean of 5,000: a gap of 200 is no reason to move, one of 400 is.
        #expect(b.plan(own: 5_100, peers: [Peer(address: "a", tunnels: 4_900)], budget: 32).isEmpty)
        #expect(
            b.plan(own: 5_200, peers: [Peer(address: "a", tunnels: 4_800)], budget: 32) == [
                Move(address: "a", count: 32)
            ])
        #expect(b.plan(own: 50, peers: [], budget: 32).isEmpty)
        #expect(b.plan(own: 0, peers: [Peer(address: "a", tunnels: 0)], budget: 32).isEmpty)
        #expect(b.plan(own: 50, peers: [Peer(address: "a", tunnels: 0)], budget: 0).isEmpty)
        #expect(b.plan(own: 6, peers: [Peer(address: "a", tunnels: 4)], budget: 32) == [Move(address: "a", count: 1)])
    }

    @Test("A round moves at most its budget; a digest's absurd count neither overflows nor makes anyone move")
    func bounded() {
        let moves = TunnelBalance(address: "a").plan(
            own: 10_000, peers: [Peer(address: "b", tunnels: 0), Peer(address: "c", tunnels: 0)], budget: 32)
        #expect(moves.reduce(0) { $0 + $1.count } == 32)
        #expect(moves == [Move(address: "b", count: 16), Move(address: "c", count: 16)])
        let absurd = [Peer(address: "b", tunnels: .max), Peer(address: "c", tunnels: -5)]
        #expect(TunnelBalance(address: "a").plan(own: 10, peers: absurd, budget: 32).isEmpty)
    }

    @Test("Only idle tunnels move, secondary ones first, never one already told to leave or already at the target")
    func choice() {
        let tunnels = [
            TunnelBalance.Tunnel(car: CarID(1), primary: true, inFlight: 0, draining: false),
            TunnelBalance.Tunnel(car: CarID(2), primary: false, inFlight: 2, draining: false),
            TunnelBalance.Tunnel(car: CarID(3), primary: false, inFlight: 0, draining: true),
            TunnelBalance.Tunnel(car: CarID(4), primary: true, inFlight: 0, draining: false),
            TunnelBalance.Tunnel(car: CarID(5), primary: false, inFlight: 0, draining: false),
            TunnelBalance.Tunnel(
                car: CarID(6), primary: false, inFlight: 0, draining: false, elsewhere: ["c:1", "d:1"]),
        ]
        #expect(TunnelBalance.choose(2, to: "c:1", from: tunnels) == [CarID(5), CarID(1)])
        #expect(TunnelBalance.choose(10, to: "c:1", from: tunnels) == [CarID(5), CarID(1), CarID(4)])
        #expect(TunnelBalance.choose(0, to: "c:1", from: tunnels).isEmpty)
        // Car 6's other tunnel is at C, not at E: it may go to E.
        #expect(TunnelBalance.choose(2, to: "e:1", from: tunnels) == [CarID(5), CarID(6)])
    }
}
