import FleetHTTP1Client
import NIOCore
import NIOHTTP1

/// One attempt's exchange with a central endpoint on the gateway's own HTTP/1.1 client: the
/// receiver of its connection, on the relay's event loop, calling the relay directly for the
/// status, each body part and the end (issue #19). Confined to that loop.
///
/// Not generic over the relay: ``CentralUpstream`` is called through `any Upstream`, where a generic
/// type's metadata was looked up at run time on every ``consume(_:)`` (3 % of a central stream).
///
/// Back-pressure, ``Upstream/consume(_:)``'s contract: the bytes delivered and not yet consumed by
/// the relay are counted; when a read of the socket ends with some outstanding, the connection
/// stops reading until the relay has consumed them all (a slow client slows the central stream).
/// A parked keep-alive connection central had closed gets the request once more on a new one.
final class CentralExchange: HTTP1ResponseReceiver {
    let attempt: Int
    /// Nil once the attempt is over (ended, failed or cancelled): no more calls to the relay, and
    /// no cycle left (the relay holds its upstream, which holds this).
    private var relay: (any UpstreamEvents)?
    private let pool: HTTP1ConnectionPool
    private let path: String
    private let body: ByteBuffer
    private let headers: [(name: String, value: String)]
    /// `text/event-stream`, or `application/json` for a whole answer (`stream: false`).
    private let accept: String
    private var connection: HTTP1ClientConnection?
    /// Bytes delivered to the relay and not yet consumed.
    private var unconsumed = 0
    private var paused = false
    private var retried = false

    init(relay: any UpstreamEvents, attempt: Int, pool: HTTP1ConnectionPool, path: String, body: ByteBuffer,
         headers: [(name: String, value: String)], accept: String = "text/event-stream") {
        self.relay = relay
        self.attempt = attempt
        self.pool = pool
        self.path = path
        self.body = body
        self.headers = headers
        self.accept = accept
    }

    func start(newConnection: Bool = false) {
        self.pool.post(
            path: self.path, body: self.body, headers: self.headers, accept: self.accept, newConnection: newConnection,
            to: self)
    }

    /// The relay passed `bytes` on.
    func consume(_ bytes: Int) {
        self.unconsumed = max(0, self.unconsumed - bytes)
        if self.paused, self.unconsumed == 0 {
            self.paused = false
            self.connection?.resume()
        }
    }

    /// The relay let go: the connection closes (central stops generating).
    func cancel() {
        self.relay = nil
        self.connection?.abandon()
        self.connection = nil
    }

    // MARK: HTTP1ResponseReceiver

    func exchangeAttached(_ connection: HTTP1ClientConnection) -> Bool {
        guard self.relay != nil else { return false }
        self.connection = connection
        return true
    }

    func exchangeDidReceiveHead(_ head: HTTPResponseHead) {
        self.relay?.upstream(self.attempt, didReceiveStatus: Int(head.status.code))
        if let seconds = RetryAfter.seconds(ofBusy: head) { self.relay?.upstream(self.attempt, isBusyFor: seconds) }
    }

    /// Asked by the connection before each body part while it is not joining a read's parts.
    var wantsBodyPartsAtOnce: Bool {
        self.relay?.upstreamWantsBytesAtOnce(self.attempt) ?? false
    }

    func exchangeDidReceiveBody(_ part: ByteBuffer) {
        self.deliver(part, readContinues: false)
    }

    func exchangeDidReceiveBodyPart(_ part: ByteBuffer) {
        self.deliver(part, readContinues: true)
    }

    private func deliver(_ part: ByteBuffer, readContinues: Bool) {
        guard let relay = self.relay else { return }
        guard relay.upstreamIsOpen(self.attempt) else {
            // The attempt is over (its `[DONE]` came in an earlier part or read): nobody will consume
            // these bytes, so they must not pause the connection — it reads on to the response's end and
            // goes back to the pool (a review finding: bytes after `[DONE]` kept it paused for good,
            // holding the dispatcher).
            self.relay = nil
            self.unconsumed = 0
            if self.paused {
                self.paused = false
                self.connection?.resume()
            }
            return
        }
        self.unconsumed += part.readableBytes
        if readContinues {
            relay.upstream(self.attempt, didReceivePartOfRead: part)
        } else {
            relay.upstream(self.attempt, didReceive: part)
        }
    }

    func exchangeDidFinishRead() {
        guard self.unconsumed > 0, !self.paused, let connection = self.connection else { return }
        self.paused = true
        connection.pause()
    }

    func exchangeDidEnd() {
        self.connection = nil
        guard let relay = self.relay else { return }
        self.relay = nil
        relay.upstreamDidEnd(self.attempt)
    }

    func exchangeDidFail(_ error: any Error, retryable: Bool) {
        self.connection = nil
        guard let relay = self.relay else { return }
        if retryable, !self.retried {
            // A parked connection central had closed: the request never reached it.
            self.retried = true
            self.unconsumed = 0
            self.paused = false
            return self.start(newConnection: true)
        }
        self.relay = nil
        relay.upstream(self.attempt, didFail: UpstreamFailure(retryable: true, label: "central_error"))
    }
}
