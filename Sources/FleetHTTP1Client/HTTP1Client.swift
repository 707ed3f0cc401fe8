package import NIOCore
import Synchronization

/// An HTTP/1.1 client for one upstream (``HTTP1Endpoint``) that keeps an ``HTTP1ConnectionPool`` per
/// event loop, so an exchange is sent and read on the loop of whoever asked for it — the agent's job on
/// its tunnel stream's loop, the gateway's relay on its client stream's loop — with no hop, no future
/// per body piece and no lock per read (issue #19).
///
/// Not async-http-client (which both programs keep for `GET /models` and the gateway's audits): its
/// per-request setup and per-body-part machinery (the handler's state machine, `RequestBag`'s buffering
/// and a future per part) were a fifth of the agent's CPU and a quarter of the gateway's central path,
/// and pinning its connections to the caller's loop made it connect per request.
package final class HTTP1Client: Sendable {
    package let endpoint: HTTP1Endpoint
    package let pool: HTTP1PoolState<ObjectIdentifier>.Configuration
    private let pools = Mutex<[ObjectIdentifier: NIOLoopBound<HTTP1ConnectionPool>]>([:])

    package init(endpoint: HTTP1Endpoint, pool: HTTP1PoolState<ObjectIdentifier>.Configuration) {
        self.endpoint = endpoint
        self.pool = pool
    }

    /// `eventLoop`'s pool (made on first use). Call on `eventLoop`.
    package func pool(on eventLoop: any EventLoop) -> HTTP1ConnectionPool {
        let key = ObjectIdentifier(eventLoop)
        let bound = self.pools.withLock { pools in
            if let pool = pools[key] { return pool }
            let pool = NIOLoopBound(
                HTTP1ConnectionPool(eventLoop: eventLoop, endpoint: self.endpoint, configuration: self.pool),
                eventLoop: eventLoop)
            pools[key] = pool
            return pool
        }
        return bound.value
    }
}
