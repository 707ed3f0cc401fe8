public import HTTPTypes

/// Connection-level events of an HTTP/2 connection, delivered on its event loop.
public protocol HTTP2ConnectionDelegate: AnyObject {
    /// The peer sent GOAWAY: no stream above `lastStreamID` will be processed, and no new stream may open.
    /// `debugData`: the frame's debug data (at most 256 bytes, as text), why the peer is going away.
    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode, debugData: String)
    /// The connection closed; every stream has already heard ``HTTPStreamDelegate/streamDidClose(error:)``.
    func connectionDidClose()
    /// An error reached the connection's handler (a TLS handshake refused, a reset), which closes it next.
    /// By default nothing: the close follows.
    func connectionDidCatch(_ error: any Error)
    /// A graceful shutdown of this connection began; long-lived streams that would hold it open should end now.
    func connectionWillShutDown()
}

extension HTTP2ConnectionDelegate {
    public func connectionDidCatch(_ error: any Error) {}
    public func connectionWillShutDown() {}
}
