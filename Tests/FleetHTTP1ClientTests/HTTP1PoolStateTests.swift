import FleetHTTP1Client
import NIOCore
import Testing

/// The keep-alive connections to an upstream that one event loop keeps (issue #19): reuse, parking, the idle
/// bound and timeout — no sockets.
@Suite("HTTP/1.1 pool state")
struct HTTP1PoolStateTests {
    private let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
    private func pool(maxIdle: Int = 2) -> HTTP1PoolState<Int> {
        HTTP1PoolState(configuration: .init(maxIdle: maxIdle, idleTimeout: .seconds(60)))
    }

    @Test("An exchange connects when nothing is parked and reuses the most recently parked connection", .timeLimit(.minutes(1)))
    func reuse() {
        var pool = self.pool()
        let first = pool.lease(now: self.start)
        let parked = [
            pool.released(1, reusable: true, now: self.start), pool.released(2, reusable: true, now: self.start + .seconds(1)),
        ]
        let leases = (0..<3).map { _ in pool.lease(now: self.start + .seconds(2)) }
        #expect(first.lease == .connect && first.expired.isEmpty)
        #expect(parked.allSatisfy { $0.park && $0.expired.isEmpty })
        #expect(leases.map(\.lease) == [.reuse(2), .reuse(1), .connect])
    }

    @Test("A connection that cannot carry another request, or one past the idle bound, is closed", .timeLimit(.minutes(1)))
    func bound() {
        var pool = self.pool(maxIdle: 1)
        let parked = [
            pool.released(1, reusable: false, now: self.start), pool.released(2, reusable: true, now: self.start),
            pool.released(3, reusable: true, now: self.start),
        ]
        #expect(parked.map(\.park) == [false, true, false])
        #expect(pool.idleCount == 1)
    }

    @Test("Parked connections idle past the timeout are closed when the pool is next used", .timeLimit(.minutes(1)))
    func idleTimeout() {
        var pool = self.pool(maxIdle: 4)
        _ = pool.released(1, reusable: true, now: self.start)
        _ = pool.released(2, reusable: true, now: self.start + .seconds(30))
        let lease = pool.lease(now: self.start + .seconds(70))
        _ = pool.released(3, reusable: true, now: self.start + .seconds(70))
        let release = pool.released(4, reusable: true, now: self.start + .seconds(200))
        #expect(lease.lease == .reuse(2) && lease.expired == [1])
        #expect(release.park && release.expired == [3])
        #expect(pool.idleCount == 1)
    }

    @Test("A parked connection the upstream closed is not leased", .timeLimit(.minutes(1)))
    func closedByRuntime() {
        var pool = self.pool()
        _ = pool.released(1, reusable: true, now: self.start)
        pool.closed(1)
        let lease = pool.lease(now: self.start)
        #expect(lease.lease == .connect)
    }
}
