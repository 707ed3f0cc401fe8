import FleetHTTP2
import HTTPTypes
import NIOCore

/// Answers an admin request whose work must not run on an event loop: a reload reads and checks files
/// (a region map, a GeoIP database, certificates, keys) for milliseconds to seconds, and run on the
/// admin stream's loop it stalled every client stream on that loop — and the load shedder, seeing the
/// loop fall behind, refused their requests with 503 `server_overloaded` (helper-52's attack: 1.4 s
/// stalls with a large map; the reload test's requests refused at random).
///
/// The body is discarded (up to 1 MiB, as ``FixedResponseDelegate``); at the request's end `work` starts
/// the blocking work off the loop (``CoalescedJob``, on NIO's thread pool), and its answer is sent on the
/// stream's loop, unless the stream has closed meanwhile.
final class OffLoopResponseDelegate: HTTPStreamDelegate {
    /// Starts the work; its future, on the given loop, is the status and JSON body of the answer.
    typealias Work = @Sendable (any EventLoop) -> EventLoopFuture<(HTTPResponse.Status, ByteBuffer)>

    let stream: any HTTPStream
    private let work: Work
    private var discarded = DiscardedBody()
    private var started = false
    private var closed = false

    init(stream: any HTTPStream, work: @escaping Work) {
        self.stream = stream
        self.work = work
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        self.discarded.discard(data, on: self.stream)
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        guard !self.started else { return }
        self.started = true
        let eventLoop = self.stream.eventLoop
        let this = NIOLoopBound(self, eventLoop: eventLoop)
        self.work(eventLoop).whenComplete { result in
            guard case .success(let (status, body)) = result else { return this.value.stream.reset(.cancel) }
            this.value.respond(status: status, body: body)
        }
    }

    func streamDidClose(error: HTTPStreamError?) {
        self.closed = true
    }

    private func respond(status: HTTPResponse.Status, body: ByteBuffer) {
        guard !self.closed else { return }
        self.stream.sendResponse(status: status, contentType: "application/json", body: body)
    }
}
