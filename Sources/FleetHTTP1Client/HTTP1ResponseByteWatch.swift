import NIOCore

/// Sits in front of NIO's response decoder and tells its ``HTTP1ClientConnection`` that bytes of an
/// answer arrived — before the decoder has a whole head to pass on. The connection needs that to tell
/// the idle-close race (nothing came back: safe to send the request again) from a server that had the
/// request and closed in the middle of its answer's head (not safe). One flag set per read.
final class HTTP1ResponseByteWatch: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private unowned let connection: HTTP1ClientConnection

    init(connection: HTTP1ClientConnection) {
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.connection.answerBytesArrived()
        context.fireChannelRead(data)
    }
}
