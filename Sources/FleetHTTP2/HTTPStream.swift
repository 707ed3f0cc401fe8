public import HTTPTypes
public import NIOCore

/// Why a stream ended without a clean end of both directions.
public struct HTTPStreamError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The HTTP/2 code: the one the peer reset with, the one we reset with, or the connection's.
    public var code: HTTP2ErrorCode
    /// True when the peer reset the stream or closed the connection; false when we did.
    public var byPeer: Bool

    public init(code: HTTP2ErrorCode, byPeer: Bool) {
        self.code = code
        self.byPeer = byPeer
    }

    /// The connection closed under the stream.
    public static let connectionClosed = Self(code: .cancel, byPeer: true)

    public var description: String { "stream reset \(self.code) by \(self.byPeer ? "peer" : "us")" }
}

/// Receives the events of one stream, on the stream's event loop.
///
/// One delegate per stream. The stream holds it strongly until ``streamDidClose(error:)``; the
/// delegate usually holds its stream to write. Inbound body bytes are flow-controlled: call
/// ``HTTPStream/consume(_:)`` once the bytes handed to ``streamDidReceiveData(_:)`` are dealt with,
/// and the peer gets the window back — so a slow consumer slows its own sender and nobody else.
public protocol HTTPStreamDelegate: AnyObject {
    /// The response head arrived (client role only; 1xx heads are skipped).
    func streamDidReceiveResponse(_ response: HTTPResponse)
    /// A piece of the body arrived.
    func streamDidReceiveData(_ data: ByteBuffer)
    /// The peer ended its side, with trailers if it sent any.
    func streamDidReceiveEnd(trailers: HTTPFields?)
    /// The stream is gone: `nil` when both sides ended cleanly, otherwise the reset or connection loss.
    func streamDidClose(error: HTTPStreamError?)
    /// ``HTTPStream/isWritable`` flipped.
    func streamWritabilityDidChange(isWritable: Bool)
}

extension HTTPStreamDelegate {
    public func streamDidReceiveResponse(_ response: HTTPResponse) {}
    public func streamWritabilityDidChange(isWritable: Bool) {}
}

/// One request/response exchange, over HTTP/2 or HTTP/1.1, confined to its event loop.
///
/// Writes never block: they queue, and ``isWritable`` turns false once more than the configured
/// high watermark is queued (the peer's flow-control window or the socket is closed); the delegate
/// hears when it turns true again. Producers are expected to pause on `false`.
public protocol HTTPStream: AnyObject {
    /// The event loop every call must be made on.
    var eventLoop: any EventLoop { get }
    /// Whether more output should be produced now.
    var isWritable: Bool { get }
    /// Bytes queued on this stream and not yet handed to the connection.
    var bufferedOutboundBytes: Int { get }
    /// True once the stream closed; later writes are dropped.
    var isClosed: Bool { get }
    /// Sends the response head (server role).
    func sendResponse(_ response: HTTPResponse, endStream: Bool)
    /// Queues body bytes.
    func sendData(_ data: ByteBuffer, endStream: Bool)
    /// Ends our side, with optional trailers.
    func sendEnd(trailers: HTTPFields?)
    /// Abandons the stream: RST_STREAM on HTTP/2, connection close on HTTP/1.1.
    func reset(_ code: HTTP2ErrorCode)
    /// Returns flow-control credit for `bytes` body bytes the application has finished with.
    func consume(_ bytes: Int)
    /// Writes what is queued now instead of at the end of this event-loop pass: for a first
    /// token that arrived in one read with many more, whose latency is what the client feels.
    func flushNow()
}

extension HTTPStream {
    /// Streams that write at once anyway need not flush early.
    public func flushNow() {}
}

/// Serves requests: the role a server-side connection (HTTP/2 or HTTP/1.1) hands its streams to.
///
/// Called on the stream's event loop when a request head is complete; the returned delegate
/// receives the body and the stream's end. Answer with ``HTTPStream/sendResponse(_:endStream:)``.
public protocol HTTPServerResponder: Sendable {
    /// Starts serving one request.
    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate

    /// The cheapest answer to a request — a refusal of a loop past capacity (issue #19).
    ///
    /// HTTP/2 only: asked on the stream's event loop for **every** request of an HTTP/2
    /// connection (`h2`, `h2c`) that has a method and a path, once its pseudo-header fields are in
    /// and before its other fields are converted, an ``HTTPRequest`` is built or a delegate
    /// exists; then ``stream(_:didReceive:connection:)`` is called only if this returned nil.
    /// A response is sent at once and the rest of the request body is drained and discarded.
    /// The default answers nil.
    func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse?
}

extension HTTPServerResponder {
    public func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse? {
        nil
    }
}

extension EventLoop {
    /// Runs `body` now when already on this loop, otherwise enqueues it.
    @inlinable
    public func executeOrRun(_ body: @escaping @Sendable () -> Void) {
        if self.inEventLoop { body() } else { self.execute(body) }
    }
}
