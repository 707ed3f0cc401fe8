import NIOCore
import NIOHTTP1
import NIOPosix

/// One event loop's connections to the inference runtime: a job on this loop is sent on a parked
/// keep-alive connection or a new one, and every connection lives on this loop, so a job reads its
/// runtime with no hop (issue #19). ``RuntimePoolState`` decides; this opens and closes the sockets.
/// Confined to ``eventLoop``.
final class RuntimeConnectionPool {
    let eventLoop: any EventLoop
    let endpoint: RuntimeEndpoint
    private var state: RuntimePoolState<ObjectIdentifier>
    /// The parked connections (the state machine's ids).
    private var parked: [ObjectIdentifier: RuntimeConnection] = [:]

    init(eventLoop: any EventLoop, endpoint: RuntimeEndpoint, configuration: RuntimePoolState<ObjectIdentifier>.Configuration) {
        self.eventLoop = eventLoop
        self.endpoint = endpoint
        self.state = RuntimePoolState(configuration: configuration)
    }

    deinit {
        for connection in self.parked.values { connection.channel?.close(promise: nil) }
    }

    /// Sends a `POST` of `body` to `path` on a parked connection or a new one; the response goes to `receiver`.
    func post(path: String, body: ByteBuffer, to receiver: any RuntimeResponseReceiver) {
        self.eventLoop.preconditionInEventLoop()
        let head = self.endpoint.postHead(path: path, contentLength: body.readableBytes)
        let (lease, expired) = self.state.lease(now: .now())
        self.close(expired)
        switch lease {
        case .reuse(let id):
            let connection = self.parked.removeValue(forKey: id)!
            guard receiver.runtimeAttached(connection) else { return self.released(connection, reusable: true) }
            connection.send(head, body: body, to: receiver)
        case .connect:
            let connection = RuntimeConnection(pool: self)
            self.endpoint.bootstrap(on: self.eventLoop, handler: connection).assumeIsolated().whenComplete { result in
                switch result {
                case .success:
                    guard receiver.runtimeAttached(connection) else { return self.released(connection, reusable: true) }
                    connection.send(head, body: body, to: receiver)
                case .failure(let error):
                    receiver.runtimeDidFail(error, retryable: false)
                }
            }
        }
    }

    /// An exchange on `connection` ended: park it for the next job, or close it.
    func released(_ connection: RuntimeConnection, reusable: Bool) {
        let (park, expired) = self.state.released(ObjectIdentifier(connection), reusable: reusable && !connection.isClosed, now: .now())
        self.close(expired)
        if park {
            self.parked[ObjectIdentifier(connection)] = connection
        } else {
            connection.close()
        }
    }

    /// `connection`'s socket closed.
    func closed(_ connection: RuntimeConnection) {
        let id = ObjectIdentifier(connection)
        if self.parked.removeValue(forKey: id) != nil { self.state.closed(id) }
    }

    private func close(_ expired: [ObjectIdentifier]) {
        for id in expired { self.parked.removeValue(forKey: id)?.close() }
    }
}
