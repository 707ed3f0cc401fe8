package import NIOCore
package import NIOHTTP1

/// Who reads one exchange on an ``HTTP1ClientConnection`` (the agent's `OpenAILocalJob`, the gateway's
/// central upstream): every call comes on the connection's event loop, which is the receiver's, as a
/// direct call (issue #19).
package protocol HTTP1ResponseReceiver: AnyObject {
    /// The pool gives the exchange this connection (reused or new) before sending on it. False: the
    /// receiver is done meanwhile; nothing is sent and the connection goes back to the pool unused.
    func exchangeAttached(_ connection: HTTP1ClientConnection) -> Bool
    /// The response's status line and headers.
    func exchangeDidReceiveHead(_ head: HTTPResponseHead)
    /// Whether the next body part goes to the receiver as soon as the decoder finds it, not joined with
    /// the rest of its read: a relay waiting for its first token asks, so that in a burst (a whole
    /// answer in one read) the first token leaves before the decoder has parsed the rest. Asked before
    /// each part until the connection starts joining a read's parts; false by default.
    var wantsBodyPartsAtOnce: Bool { get }
    /// Body bytes: what one read of the socket brought (all the chunked-encoding chunks NIO's decoder
    /// found in it), delivered before ``exchangeDidFinishRead()`` or ``exchangeDidEnd()``.
    func exchangeDidReceiveBody(_ part: ByteBuffer)
    /// One part of a read's body, asked for with ``wantsBodyPartsAtOnce``: more of the read follows.
    /// By default as ``exchangeDidReceiveBody(_:)``.
    func exchangeDidReceiveBodyPart(_ part: ByteBuffer)
    /// What one read of the socket brought has been delivered: the moment to write what it produced.
    func exchangeDidFinishRead()
    /// The response ended; the connection is no longer the receiver's.
    func exchangeDidEnd()
    /// The exchange failed: the connection could not be opened, or closed or broke before the response
    /// ended. `retryable`: a reused connection that failed before any byte of the response (the server
    /// had closed it as idle), so the request can go again on a new one.
    func exchangeDidFail(_ error: any Error, retryable: Bool)
}

extension HTTP1ResponseReceiver {
    package var wantsBodyPartsAtOnce: Bool { false }
    package func exchangeDidReceiveBodyPart(_ part: ByteBuffer) { self.exchangeDidReceiveBody(part) }
}
