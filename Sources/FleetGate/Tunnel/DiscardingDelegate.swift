import FleetHTTP2
import HTTPTypes
import NIOCore

/// Reads and drops a response (the answer to a control message).
final class DiscardingDelegate: HTTPStreamDelegate {
    var stream: HTTP2Stream?
    func streamDidReceiveData(_ data: ByteBuffer) {}
    func streamDidReceiveEnd(trailers: HTTPFields?) {}
    func streamDidClose(error: HTTPStreamError?) {}
}
