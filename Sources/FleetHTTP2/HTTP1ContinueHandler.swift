import NIOCore
import NIOHTTP1

/// Answers `Expect: 100-continue` on an HTTP/1.1 request with `100 Continue` as its head arrives, so a
/// client that waits before sending its body sends it at once (curl waits a second otherwise — helper-127).
///
/// Every request body is read (a refusal on the head drains it), so there is no later moment worth
/// waiting for. Not for HTTP/1.0 (RFC 9110 §10.1.1: the expectation is ignored), nor for a request
/// that says it has no body. Sits before ``HTTP1KeepAliveHandler`` so the informational head is
/// written as it is (no `Connection: close` on it); NIO's pipelining helper and encoder pass
/// informational heads through.
final class HTTP1ContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = self.unwrapInboundIn(data), Self.expectsContinue(head) {
            context.writeAndFlush(
                self.wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }

    static func expectsContinue(_ head: HTTPRequestHead) -> Bool {
        head.version == .http1_1 && head.headers["expect"].contains { $0.lowercased() == "100-continue" }
            && head.headers["content-length"].first != "0"
    }
}
