import FleetHTTP1Client
import NIOCore
import NIOSSL
import Synchronization

/// The gateway's own HTTP/1.1 clients for central endpoints, one per base URL, each with a connection
/// pool per event loop (issue #19): a central stream is sent and read on its relay's loop, with no
/// hop, no future per body part and no pool lock per read. `https://` endpoints get TLS in the same
/// pipeline (swift-nio-ssl; the system's roots and `central.caFile`). async-http-client still serves
/// every endpoint's `GET /models`, and a stream to a base URL this client does not take
/// (``CentralFallbackUpstream``: credentials in the URL, say).
///
/// Each loop parks at most `maxConcurrent` keep-alive connections to an endpoint; one idle over
/// 60 s is closed when its loop next uses the pool (no timer). The streams in flight to it are
/// bounded by ``CentralDirectory``'s lease (`maxConcurrent`). `central.*` is kept across reloads
/// (a restart applies it), so the first use of a base URL fixing its client loses nothing.
final class CentralClients: Sendable {
    /// A connect that takes longer fails the attempt (`central_error`), as async-http-client's did.
    static let connectTimeout = TimeAmount.seconds(5)
    /// How long a parked connection is kept.
    static let idleTimeout = TimeAmount.seconds(60)

    /// nil for a base URL that is not `http(s)://host[:port][/path]`.
    private let clients = Mutex<[String: HTTP1Client?]>([:])
    /// The client context for `https://` endpoints; nil when none is configured.
    private let tls: NIOSSLContext?

    init(tls: NIOSSLContext? = nil) {
        self.tls = tls
    }

    /// The pool for `endpoint` on `eventLoop`, or nil when its base URL is not
    /// `http(s)://host[:port][/path]`. Call on `eventLoop`.
    func pool(for endpoint: CentralDirectory.Endpoint, on eventLoop: any EventLoop) -> HTTP1ConnectionPool? {
        let client = self.clients.withLock { clients -> HTTP1Client? in
            if let client = clients[endpoint.baseURL] { return client }
            let client = try? HTTP1Client(
                endpoint: HTTP1Endpoint(baseURL: endpoint.baseURL, connectTimeout: Self.connectTimeout, tls: self.tls),
                pool: .init(maxIdle: max(1, min(endpoint.maxConcurrent, 4096)), idleTimeout: Self.idleTimeout))
            // Bounded: more base URLs than a configuration plausibly names over reloads.
            if clients.count >= 256 { clients.removeAll() }
            clients[endpoint.baseURL] = .some(client)
            return client
        }
        return client?.pool(on: eventLoop)
    }
}
