public import FleetHTTP2
public import HTTPTypes
public import NIOCore
import Synchronization

/// Wraps a responder and keeps every request body it sees (up to 1 MiB each), for tests that
/// check what an upstream received.
public final class BodyRecordingResponder: HTTPServerResponder {
    let inner: any HTTPServerResponder
    private let recorded = Mutex<[(path: String, headers: HTTPFields, body: ByteBuffer)]>([])

    public init(_ inner: any HTTPServerResponder) { self.inner = inner }

    /// The requests received so far: path, header fields and body.
    public var requests: [(path: String, headers: HTTPFields, body: ByteBuffer)] { self.recorded.withLock { $0 } }

    public func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        let delegate = self.inner.stream(stream, didReceive: request, connection: connection)
        return Tee(inner: delegate, path: request.path ?? "", headers: request.headerFields, owner: self)
    }

    fileprivate func record(path: String, headers: HTTPFields, body: ByteBuffer) {
        self.recorded.withLock { $0.append((path, headers, body)) }
    }

    private final class Tee: HTTPStreamDelegate {
        let inner: any HTTPStreamDelegate
        let path: String
        let headers: HTTPFields
        let owner: BodyRecordingResponder
        var body = ByteBuffer()

        init(inner: any HTTPStreamDelegate, path: String, headers: HTTPFields, owner: BodyRecordingResponder) {
            self.inner = inner
            self.path = path
            self.headers = headers
            self.owner = owner
        }

        func streamDidReceiveResponse(_ response: HTTPResponse) { self.inner.streamDidReceiveResponse(response) }

        func streamDidReceiveData(_ data: ByteBuffer) {
            if self.body.readableBytes + data.readableBytes <= 1 << 20 { self.body.writeImmutableBuffer(data) }
            self.inner.streamDidReceiveData(data)
        }

        func streamDidReceiveEnd(trailers: HTTPFields?) {
            self.owner.record(path: self.path, headers: self.headers, body: self.body)
            self.inner.streamDidReceiveEnd(trailers: trailers)
        }

        func streamDidClose(error: HTTPStreamError?) { self.inner.streamDidClose(error: error) }

        func streamWritabilityDidChange(isWritable: Bool) {
            self.inner.streamWritabilityDidChange(isWritable: isWritable)
        }
    }
}
