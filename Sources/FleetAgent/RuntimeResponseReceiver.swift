import NIOCore

/// Who reads one exchange with the inference runtime (``OpenAILocalJob``): every call comes on the
/// connection's event loop, which is the job's, as a direct call (issue #19).
protocol RuntimeResponseReceiver: AnyObject {
    /// The pool gives the exchange this connection (reused or new) before sending on it. False: the
    /// job ended meanwhile; nothing is sent and the connection goes back to the pool unused.
    func runtimeAttached(_ connection: RuntimeConnection) -> Bool
    /// The response's status line and headers.
    func runtimeDidReceiveHead(status: UInt)
    /// A piece of the body (NIO's decoder: one per chunked-encoding chunk).
    func runtimeDidReceiveBody(_ part: ByteBuffer)
    /// What one read of the socket brought has been delivered: the moment to write what it produced.
    func runtimeDidFinishRead()
    /// The response ended; the connection is no longer the job's.
    func runtimeDidEnd()
    /// The exchange failed: the connection could not be opened, or closed or broke before the response
    /// ended. `retryable`: a reused connection that failed before any byte of the response (the runtime
    /// had closed it as idle), so the request can go again on a new one.
    func runtimeDidFail(_ error: any Error, retryable: Bool)
}
