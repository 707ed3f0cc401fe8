import FleetHTTP2
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1

/// One HTTP/1.1 keep-alive connection of the load client, one request at a time: it plays the
/// ``HTTPStream`` side of a ``ClientStream`` (the same measurement and text check as on HTTP/2),
/// so a cancellation mid-stream closes the connection (HTTP/1.1 has no reset) and a response that
/// ended leaves the connection idle for the next request from the same pool.
///
/// Responsibilities:
/// 1. send one request (head with `content-length`, body) and hand the response's head, body
///    and end to the exchange's delegate;
/// 2. report a connection lost mid-response as ``HTTPStreamError/connectionClosed``;
/// 3. say when it is idle again (`connection: close` or a closed socket: never).
final class HTTP1ClientConnection: ChannelInboundHandler, HTTPStream {
    typealias InboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPRequestPart

    let channel: any Channel
    private var delegate: (any HTTPStreamDelegate)?
    private var keepAlive = true
    /// Called on the event loop when a response ended and the connection can take another request.
    var onIdle: ((HTTP1ClientConnection) -> Void)?

    init(channel: any Channel) { self.channel = channel }

    /// Installs the HTTP/1.1 client codec and a connection handler on a new channel.
    static func install(on channel: any Channel) throws {
        try channel.pipeline.syncOperations.addHTTPClientHandlers()
        try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPClientCodec())
        try channel.pipeline.syncOperations.addHandler(HTTP1ClientConnection(channel: channel))
    }

    /// Whether it can take a request now.
    var isIdle: Bool { self.delegate == nil && self.keepAlive && self.channel.isActive }

    /// Sends a request whose response goes to `delegate` (on the event loop).
    func send(_ head: HTTPRequest, body: ByteBuffer, delegate: any HTTPStreamDelegate) {
        var head = head
        head.headerFields[.contentLength] = "\(body.readableBytes)"
        self.delegate = delegate
        self.channel.write(HTTPRequestPart.head(head), promise: nil)
        self.channel.write(HTTPRequestPart.body(body), promise: nil)
        self.channel.writeAndFlush(HTTPRequestPart.end(nil), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let response):
            guard response.status.kind != .informational else { return }
            if response.headerFields[.connection]?.lowercased() == "close" { self.keepAlive = false }
            self.delegate?.streamDidReceiveResponse(response)
        case .body(let buffer):
            self.delegate?.streamDidReceiveData(buffer)
        case .end(let trailers):
            let delegate = self.delegate
            self.delegate = nil
            delegate?.streamDidReceiveEnd(trailers: trailers)
            delegate?.streamDidClose(error: nil)
            if self.keepAlive { self.onIdle?(self) } else { context.close(promise: nil) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.keepAlive = false
        let delegate = self.delegate
        self.delegate = nil
        delegate?.streamDidClose(error: .connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: HTTPStream (what a ClientStream calls)

    var eventLoop: any EventLoop { self.channel.eventLoop }
    var isWritable: Bool { true }
    var bufferedOutboundBytes: Int { 0 }
    var isClosed: Bool { self.delegate == nil }
    func sendResponse(_ response: HTTPResponse, endStream: Bool) {}
    func sendData(_ data: ByteBuffer, endStream: Bool) {}
    func sendEnd(trailers: HTTPFields?) {}
    /// HTTP/1.1 cannot reset one response: the client closes the connection.
    func reset(_ code: HTTP2ErrorCode) { self.channel.close(promise: nil) }
    func consume(_ bytes: Int) {}
}
