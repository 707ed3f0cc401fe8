import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` on an HTTP/1.1 request with `100 Continue` once the responder has seen
/// its head without answering it, so a client that waits before sending its body sends it at once (curl
/// waits a second otherwise — helper-127). A request refused on its head (a bad key's 401, a 404) gets
/// its final answer alone and the client need not send the body (RFC 9110 §10.1.1; helper-129).
///
/// Not for HTTP/1.0 (the expectation is ignored), nor for a request that says it has no body. Sits before
/// ``HTTP1KeepAliveHandler`` so the informational head is written as it is (no `Connection: close` on
/// it), and sees the responder's own head on its way out; NIO's pipelining helper and encoder pass
/// informational heads through.
final class HTTP1ContinueHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// While a head that expects 100 is handed to the responder: whether a final head went out meanwhile.
    private var answered: Bool?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = self.unwrapInboundIn(data), Self.expectsContinue(head) else {
            return context.fireChannelRead(data)
        }
        self.answered = false
        context.fireChannelRead(data)
        let answered = self.answered ?? true
        self.answered = nil
        guard !answered else { return }
        context.writeAndFlush(
            self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if self.answered == false, case .head(let head) = self.unwrapOutboundIn(data), head.status.code >= 200 {
            self.answered = true
        }
        context.write(data, promise: promise)
    }

    static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        head.version == .http1_1 && head.headers["expect"].contains(where: Self.asksToContinue)
            && head.headers["content-length"].first != "0"
    }

    /// Whether an `Expect` field's value asks for `100 Continue` (RFC 9110 §10.1.1: the only expectation
    /// defined; case-insensitive). HTTP/2's streams ask the same (`HTTP2ConnectionHandler+Session.swift`).
    static func asksToContinue(_ value: String) -> Bool {
        value.utf8.count == 12 && value.lowercased() == "100-continue"
    }
}
