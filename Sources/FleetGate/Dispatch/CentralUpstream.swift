import AsyncHTTPClient
import FleetHTTP2
import FleetProtocol
import NIOCore
import NIOHTTP1
import Synchronization

/// A stream from a central endpoint through async-http-client, behind the same ``Upstream``
/// interface as a car: events arrive on the relay's event loop, and each body part is
/// acknowledged only when the relay calls ``consume(_:)`` — so a slow client slows the central
/// stream too (async-http-client reads the next part only when the returned future completes).
final class CentralUpstream: Upstream {
    let endpoint: CentralDirectory.Endpoint
    private let task = Mutex<HTTPClient.Task<Void>?>(nil)
    private let pending = Mutex<EventLoopPromise<Void>?>(nil)

    private init(endpoint: CentralDirectory.Endpoint) { self.endpoint = endpoint }

    /// Starts `POST {base}/chat/completions` (or `/completions`) with `body`, streaming.
    static func open<Relay: UpstreamEvents>(
        client: HTTPClient, endpoint: CentralDirectory.Endpoint, path: String, body: ByteBuffer, requestID: String,
        trace: (parent: String, state: String?) = ("", nil), attempt: Int, relay: NIOLoopBound<Relay>
    ) -> CentralUpstream {
        let upstream = CentralUpstream(endpoint: endpoint)
        let delegate = CentralDelegate(upstream: upstream, relay: relay, attempt: attempt)
        do {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "accept", value: "text/event-stream")
            headers.add(name: FleetHeader.requestID, value: requestID)
            // #17: W3C Trace Context.
            if !trace.parent.isEmpty { headers.add(name: TraceParent.header, value: trace.parent) }
            if let state = trace.state { headers.add(name: TraceParent.stateHeader, value: state) }
            var request = try Self.template(url: endpoint.baseURL + path)
            request.headers = headers
            request.body = .byteBuffer(body)
            // `.delegate(on:)`, not `.delegateAndChannel(on:)`: async-http-client closes a connection
            // bound to a required event loop as soon as it is idle, so under concurrency every
            // request paid a TCP connect (issue #19). The pool opens new connections on the
            // preferred loop, so a hop between loops is the exception, not the rule.
            let task = client.execute(request: request, delegate: delegate, eventLoop: .delegate(on: relay.eventLoop))
            upstream.task.withLock { $0 = task }
        } catch {
            delegate.deliver {
                $0.upstream(attempt, didFail: UpstreamFailure(retryable: true, label: "central_request"))
            }
        }
        return upstream
    }

    /// Requests with their URL parsed, one per endpoint and route: async-http-client parses the
    /// URL string into `URL` and its parts on every request (2 % of the central path's CPU).
    /// Bounded: cleared when it holds more URLs than a configuration plausibly names.
    private static let templates = Mutex<[String: HTTPClient.Request]>([:])

    private static func template(url: String) throws -> HTTPClient.Request {
        if let request = Self.templates.withLock({ $0[url] }) { return request }
        let request = try HTTPClient.Request(url: url, method: .POST)
        Self.templates.withLock { templates in
            if templates.count >= 256 { templates.removeAll() }
            templates[url] = request
        }
        return request
    }

    func consume(_ bytes: Int) {
        self.pending.withLock { promise in
            promise?.succeed()
            promise = nil
        }
    }

    func cancel() {
        self.task.withLock { $0 }?.cancel()
        self.consume(0)
    }

    fileprivate func waitForConsumption(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        self.pending.withLock { $0 = promise }
        return promise.futureResult
    }
}

private final class CentralDelegate<Relay: UpstreamEvents>: HTTPClientResponseDelegate, Sendable {
    typealias Response = Void
    let upstream: CentralUpstream
    let relay: NIOLoopBound<Relay>
    let attempt: Int
    let finished = Atomic<Bool>(false)

    init(upstream: CentralUpstream, relay: NIOLoopBound<Relay>, attempt: Int) {
        self.upstream = upstream
        self.relay = relay
        self.attempt = attempt
    }

    func deliver(_ body: @escaping @Sendable (Relay) -> Void) {
        let relay = self.relay
        relay.eventLoop.executeOrRun { body(relay.value) }
    }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        let attempt = self.attempt, status = Int(head.status.code)
        self.deliver { $0.upstream(attempt, didReceiveStatus: status) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let attempt = self.attempt
        let ack = self.upstream.waitForConsumption(on: task.eventLoop)
        self.deliver { $0.upstream(attempt, didReceive: buffer) }
        return ack
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        guard !self.finished.exchange(true, ordering: .relaxed) else { return }
        let attempt = self.attempt
        self.deliver { $0.upstream(attempt, didFail: UpstreamFailure(retryable: true, label: "central_error")) }
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        guard !self.finished.exchange(true, ordering: .relaxed) else { return }
        let attempt = self.attempt
        self.deliver { $0.upstreamDidEnd(attempt) }
    }
}
