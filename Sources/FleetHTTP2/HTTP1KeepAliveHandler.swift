import NIOCore
import NIOHTTP1

/// Closes an HTTP/1.1 connection after a response when the request asked for it
/// (`Connection: close`, or HTTP/1.0 without keep-alive) — RFC 9112 §9.6.
///
/// An HTTP/1.0 request's response is written as HTTP/1.0 (the HTTPTypes codec writes every head as 1.1), so
/// NIO's encoder does not chunk it: an HTTP/1.0 client cannot read chunked coding (helper-93). A body of no
/// known length (a stream) then ends with the connection, which closes after it even when the client asked
/// to keep it (RFC 9112 §6.3 and §9.3).
///
/// Sits between NIO's HTTP/1 codec and the HTTPTypes codec, because swift-http-types drops
/// connection-specific fields and the stream layer cannot see them.
final class HTTP1KeepAliveHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private var keepAlive = true
    private var requestVersion = HTTPVersion.http1_1

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data) {
            self.keepAlive = head.isKeepAlive
            self.requestVersion = head.version
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = self.unwrapOutboundIn(data)
        if case .head(var head) = part, !self.keepAlive || self.requestVersion == .http1_0 {
            if self.requestVersion == .http1_0 {
                head.version = .http1_0
                if !head.headers.contains(name: "content-length") { self.keepAlive = false }
            }
            if !self.keepAlive { head.headers.replaceOrAdd(name: "connection", value: "close") }
            context.write(self.wrapOutboundOut(.head(head)), promise: promise)
            return
        }
        guard case .end = part, !self.keepAlive else {
            context.write(data, promise: promise)
            return
        }
        let written = promise ?? context.eventLoop.makePromise()
        context.write(data, promise: written)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}
