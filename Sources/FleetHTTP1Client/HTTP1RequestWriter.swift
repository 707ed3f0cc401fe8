import NIOCore
import NIOHTTP1

/// Where NIO's `HTTPRequestEncoder` would sit: the ``HTTP1ClientConnection``'s requests come already
/// framed (``HTTP1Request``), as a `.body` part, and go to the socket as they are.
///
/// The `.head` part before it carries only the method (``HTTP1Request/decoderHead``), for NIO's response
/// decoder above this handler, which pairs each response with its request's method (the answer to a
/// `HEAD` has no body) and refuses a response to no request; nothing of it is written. So a `.body`
/// here is a whole framed request, never a piece of a body to frame. `.end` writes nothing.
final class HTTP1RequestWriter: ChannelOutboundHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .body(let bytes):
            context.write(self.wrapOutboundOut(bytes), promise: promise)
        case .head:
            promise?.succeed()
        case .end(let trailers):
            // Framed with `content-length` (``HTTP1Request``): there is nowhere for trailers to go.
            precondition(trailers == nil, "HTTP1RequestWriter: trailers on a request framed with content-length")
            promise?.succeed()
        }
    }
}
