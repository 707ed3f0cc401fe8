package import NIOCore
import NIOHTTP1
import NIOPosix

/// One event loop's connections to an upstream: an exchange on this loop is sent on a parked
/// keep-alive connection or a new one, and every connection lives on this loop, so the receiver reads
/// its upstream with no hop (issue #19). ``HTTP1PoolState`` decides; this opens and closes the sockets.
/// Confined to ``eventLoop``.
package final class HTTP1ConnectionPool {
    package let eventLoop: any EventLoop
    package let endpoint: HTTP1Endpoint
    private var state: HTTP1PoolState<ObjectIdentifier>
    /// The parked connections (the state machine's ids).
    private var parked: [ObjectIdentifier: HTTP1ClientConnection] = [:]

    init(
        eventLoop: any EventLoop, endpoint: HTTP1Endpoint, configuration: HTTP1PoolState<ObjectIdentifier>.Configuration
    ) {
        self.eventLoop = eventLoop
        self.endpoint = endpoint
        self.state = HTTP1PoolState(configuration: configuration)
    }

    deinit {
        for connection in self.parked.values { connection.channel?.close(promise: nil) }
    }

    /// Parked connections now (tests).
    package var idleCount: Int { self.state.idleCount }

    /// Sends a `POST` of `body` to `path` (after the endpoint's prefix), with `headers` beside the
    /// endpoint's own and `accept` (``HTTP1Endpoint/post(path:body:headers:accept:)``), on a
    /// parked connection or a new one (`newConnection`: always a new one — the retry of an exchange
    /// whose parked connection the server had closed); the response goes to `receiver`.
    package func post(
        path: String, body: ByteBuffer, headers: [(name: String, value: String)] = [],
        accept: String = "text/event-stream", newConnection: Bool = false, to receiver: any HTTP1ResponseReceiver
    ) {
        self.eventLoop.preconditionInEventLoop()
        let request = self.endpoint.post(path: path, body: body, headers: headers, accept: accept)
        let (lease, expired) = newConnection ? (.connect, []) : self.state.lease(now: .now())
        self.close(expired)
        switch lease {
        case .reuse(let id):
            let connection = self.parked.removeValue(forKey: id)!
            guard receiver.exchangeAttached(connection) else { return self.released(connection, reusable: true) }
            connection.send(request, to: receiver)
        case .connect:
            let connection = HTTP1ClientConnection(pool: self)
            self.endpoint.bootstrap(on: self.eventLoop, handler: connection).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    guard receiver.exchangeAttached(connection) else {
                        return self.released(connection, reusable: true)
                    }
                    connection.send(request, to: receiver)
                case .failure(let error):
                    receiver.exchangeDidFail(error, retryable: false)
                }
            }
        }
    }

    /// An exchange on `connection` ended: park it for the next, or close it.
    func released(_ connection: HTTP1ClientConnection, reusable: Bool) {
        let (park, expired) = self.state.released(
            ObjectIdentifier(connection), reusable: reusable && !connection.isClosed, now: .now())
        self.close(expired)
        if park {
            self.parked[ObjectIdentifier(connection)] = connection
        } else {
            connection.close()
        }
    }

    /// `connection`'s socket closed.
    func closed(_ connection: HTTP1ClientConnection) {
        let id = ObjectIdentifier(connection)
        if self.parked.removeValue(forKey: id) != nil { self.state.closed(id) }
    }

    private func close(_ expired: [ObjectIdentifier]) {
        for id in expired { self.parked.removeValue(forKey: id)?.close() }
    }
}
