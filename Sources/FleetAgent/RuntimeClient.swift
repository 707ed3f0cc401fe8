import NIOCore
import Synchronization

/// The agent's HTTP/1.1 client for its inference runtime on the openai-local job path: a
/// ``RuntimeConnectionPool`` per event loop, so each job is sent and read on its own loop — the loop
/// its tunnel stream lives on — with no hop, no future per body piece and no lock per read (issue #19).
///
/// Not async-http-client (which the agent keeps for `GET /models` at start): its per-body-part
/// machinery (the handler's state machine, `RequestBag`'s buffering and a future per part) was a
/// fifth of the agent's CPU, and pinning its connections to the job's loop made it connect per request.
final class RuntimeClient: Sendable {
    let endpoint: RuntimeEndpoint
    let pool: RuntimePoolState<ObjectIdentifier>.Configuration
    private let pools = Mutex<[ObjectIdentifier: NIOLoopBound<RuntimeConnectionPool>]>([:])

    init(endpoint: RuntimeEndpoint, pool: RuntimePoolState<ObjectIdentifier>.Configuration) {
        self.endpoint = endpoint
        self.pool = pool
    }

    /// `eventLoop`'s pool (made on first use). Call on `eventLoop`.
    func pool(on eventLoop: any EventLoop) -> RuntimeConnectionPool {
        let key = ObjectIdentifier(eventLoop)
        let bound = self.pools.withLock { pools in
            if let pool = pools[key] { return pool }
            let pool = NIOLoopBound(
                RuntimeConnectionPool(eventLoop: eventLoop, endpoint: self.endpoint, configuration: self.pool),
                eventLoop: eventLoop)
            pools[key] = pool
            return pool
        }
        return bound.value
    }
}
