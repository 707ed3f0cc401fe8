import NIOCore
import NIOHTTP1

/// Answers a request NIO's HTTP/1.1 parser refused with an OpenAI-style JSON error, then lets the
/// connection close — where NIO's `HTTPServerProtocolErrorHandler` wrote a bare `400` with no body
/// (helper-96: a bad chunk size, two `Content-Length`s, a header too large, a bad version; every other
/// refusal of the gateway is JSON). A header block over the parser's limit is `431`, the rest `400`.
///
/// As NIO's, it answers only while no response has begun (a response under way cannot be replaced),
/// and passes the error on: the stream handler closes the connection. It sits where NIO's would, after
/// the pipelining helper. Its bookkeeping never traps: the network must not be able to crash the process.
final class HTTP1ProtocolErrorResponder: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A response head was written and its end not yet.
    private var responding = false

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError else { return context.fireErrorCaught(error) }
        if !self.responding {
            let (status, body) = Self.answer(to: parserError)
            var buffer = context.channel.allocator.buffer(capacity: body.utf8.count)
            buffer.writeString(body)
            let headers = HTTPHeaders([
                ("content-type", "application/json"), ("content-length", String(buffer.readableBytes)),
                ("connection", "close"),
            ])
            let head = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch self.unwrapOutboundIn(data) {
        case .head(let head) where (100..<200).contains(head.status.code): break  // informational
        case .head: self.responding = true
        case .body: break
        case .end: self.responding = false
        }
        context.write(data, promise: promise)
    }

    /// The status and OpenAI-style body for `error`; the message names what was wrong, never the bytes.
    static func answer(to error: HTTPParserError) -> (HTTPResponseStatus, String) {
        let (status, detail): (HTTPResponseStatus, String)
        switch error {
        case .headerOverflow: (status, detail) = (.requestHeaderFieldsTooLarge, "the request head is too large")
        case .invalidContentLength, .unexpectedContentLength:
            (status, detail) = (.badRequest, "its Content-Length is invalid or conflicts with its framing")
        case .invalidChunkSize: (status, detail) = (.badRequest, "a chunk size of its chunked body is invalid")
        case .invalidVersion: (status, detail) = (.badRequest, "its HTTP version is not HTTP/1.0 or HTTP/1.1")
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
            (status, detail) = (.badRequest, "its request target is invalid")
        case .invalidHeaderToken, .lfExpected, .invalidCharactersUsed:
            (status, detail) = (.badRequest, "a header field or line is malformed")
        case .invalidMethod: (status, detail) = (.badRequest, "its method is invalid")
        default: (status, detail) = (.badRequest, "it is not valid HTTP/1.1")
        }
        let code = status == .requestHeaderFieldsTooLarge ? "request_header_fields_too_large" : "invalid_request"
        return (
            status,
            #"{"error":{"message":"The request could not be parsed: \#(detail).","type":"invalid_request_error","param":null,"code":"\#(code)"}}"#
        )
    }
}
