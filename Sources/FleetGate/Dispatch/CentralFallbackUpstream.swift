import AsyncHTTPClient
import FleetHTTP2
import FleetProtocol
import NIOCore
import NIOHTTP1
import Synchronization

/// A stream from a central endpoint whose base URL the gateway's own client (``CentralUpstream``) does
/// not take — credentials in the URL — through async-http-client, behind the same ``Upstream``
/// interface as a car: events arrive on the relay's event loop, and each body part is
/// acknowledged only when the relay calls ``consume(_:)`` — so a slow client slows the central
/// stream too (async-http-client reads the next part only when the returned future completes).
final class CentralFallbackUpstream: Upstream {
    let endpoint: CentralDirectory.Endpoint
    private let task = Mutex<HTTPClient.Task<Void>?>(nil)
    private let part = Mutex(PartState.idle)

    /// The acknowledgement of the body part being relayed.
    private enum PartState {
        case idle
        /// Being delivered; `consumed` once the relay acknowledged it meanwhile (the usual case:
        /// delivery runs inline on the relay's loop), so no promise is needed.
        case delivering(consumed: Bool)
        /// Delivered, not yet acknowledged: async-http-client waits on this promise.
        case waiting(EventLoopPromise<Void>)
    }

    private init(endpoint: CentralDirectory.Endpoint) { self.endpoint = endpoint }

    /// Starts `POST {base}/chat/completions` (or `/completions`) with `body`, streaming — or, with
    /// `wholeAnswer`, asking for one JSON answer.
    static func open<Relay: UpstreamEvents>(
        client: HTTPClient, endpoint: CentralDirectory.Endpoint, path: String, body: ByteBuffer, requestID: String,
        trace: (parent: String, state: String?) = ("", nil), wholeAnswer: Bool = false,
        extra: [(name: String, value: String)] = [], attempt: Int, relay: NIOLoopBound<Relay>
    ) -> CentralFallbackUpstream {
        let upstream = CentralFallbackUpstream(endpoint: endpoint)
        let delegate = CentralDelegate(upstream: upstream, relay: relay, attempt: attempt)
        do {
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: "application/json")
            headers.add(name: "accept", value: wholeAnswer ? "application/json" : "text/event-stream")
            headers.add(name: FleetHeader.requestID, value: requestID)
            for (name, value) in extra { headers.add(name: name, value: value) }
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
        let promise = self.part.withLock { state -> EventLoopPromise<Void>? in
            switch state {
            case .idle, .delivering(consumed: true):
                return nil
            case .delivering(consumed: false):
                state = .delivering(consumed: true)
                return nil
            case .waiting(let promise):
                state = .idle
                return promise
            }
        }
        promise?.succeed()  // outside the lock: async-http-client may deliver the next part from here
    }

    func cancel() {
        self.task.withLock { $0 }?.cancel()
        self.consume(0)
    }

    /// A body part is about to be delivered to the relay.
    fileprivate func delivering() {
        self.part.withLock { $0 = .delivering(consumed: false) }
    }

    /// The part's acknowledgement: already there when the relay consumed it during delivery (no
    /// promise per part, 32 per burst stream), else a promise ``consume(_:)`` completes.
    fileprivate func acknowledgement(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.part.withLock { state -> EventLoopFuture<Void> in
            if case .delivering(consumed: true) = state {
                state = .idle
                return eventLoop.makeSucceededVoidFuture()
            }
            let promise = eventLoop.makePromise(of: Void.self)
            state = .waiting(promise)
            return promise.futureResult
        }
    }
}

private final class CentralDelegate<Relay: UpstreamEvents>: HTTPClientResponseDelegate, Sendable {
    typealias Response = Void
    let upstream: CentralFallbackUpstream
    let relay: NIOLoopBound<Relay>
    let attempt: Int
    let finished = Atomic<Bool>(false)

    init(upstream: CentralFallbackUpstream, relay: NIOLoopBound<Relay>, attempt: Int) {
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
        if let seconds = RetryAfter.seconds(ofBusy: head) { self.deliver { $0.upstream(attempt, isBusyFor: seconds) } }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let attempt = self.attempt
        self.upstream.delivering()
        self.deliver { $0.upstream(attempt, didReceive: buffer) }
        return self.upstream.acknowledgement(on: task.eventLoop)
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
