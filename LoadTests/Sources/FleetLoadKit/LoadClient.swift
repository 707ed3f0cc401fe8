import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
package import NIOCore
package import Synchronization

/// Open-loop clients: sends every planned request at its planned time, whatever happened to the
/// ones before (a closed loop would hide queueing), over a few HTTP/2 connections with many
/// streams each, and a share over HTTP/1.1 keep-alive connections (one request at a time each,
/// opened as needed). The gateway learns where each client is from `X-Forwarded-For` (the
/// harness is its trusted proxy) or from a PROXY v2 header per connection (connections are then
/// per origin address). A later turn of a conversation carries the answers the client received
/// and leaves at its time or when the previous answer closed, whichever is later. The harness's
/// own lag (how late a request left) is measured per request.
package final class LoadClient: Sendable {
    let host: String
    let port: Int
    let group: any EventLoopGroup
    let connections: Int
    let ttftObjective: Int?
    let originVia: Scenario.OriginVia
    /// HTTP/2 connections: by slot (`X-Forwarded-For`) or by origin address (PROXY v2).
    private let handles = Mutex<[String: HTTP2ConnectionHandle]>([:])
    private let http1: HTTP1Pool
    private let conversations = ConversationStore()
    private let results = Mutex<[RequestResult]>([])
    private let inFlight = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)
    let configuration = HTTP2Configuration(
        maxConcurrentStreams: 4096, connectionWindowSize: 1 << 24, idleTimeout: nil, stallTimeout: nil)

    package init(
        host: String, port: Int, group: any EventLoopGroup, connections: Int, ttftObjective: Int?,
        originVia: Scenario.OriginVia = .xff
    ) {
        self.host = host
        self.port = port
        self.group = group
        self.connections = connections
        self.ttftObjective = ttftObjective
        self.originVia = originVia
        self.http1 = HTTP1Pool(host: host, port: port, loop: group.next())
    }

    /// Requests sent and not yet closed.
    package var outstanding: Int { self.inFlight.load(ordering: .relaxed) }

    /// Sends nothing more (the gateway died: the rest of the plan would only pile up refusals).
    package func stopSending() { self.stopped.store(true, ordering: .relaxed) }

    /// Results so far (in completion order).
    package var completed: [RequestResult] { self.results.withLock { $0 } }

    /// Sends `requests` at their times (seconds after `origin`); returns when the last was sent
    /// (a later turn still waiting for its previous answer leaves when that answer closes).
    package func run(_ requests: [RunPlan.Request], origin: NIODeadline) async throws {
        let keys =
            self.originVia == .xff
            ? (0..<self.connections).map { "slot-\($0)" }
            : Set(requests.filter { !$0.http1 }.map(\.address)).sorted()
        for key in keys {
            let handle = try await self.connect(key: key)
            self.handles.withLock { $0[key] = handle }
        }
        for (i, request) in requests.enumerated() {
            let due = origin + .nanoseconds(Int64(request.at * 1e9))
            let wait = due - .now()
            if wait.nanoseconds > 0 { try await Task.sleep(nanoseconds: UInt64(wait.nanoseconds)) }
            if self.stopped.load(ordering: .relaxed) { return }
            self.inFlight.add(1, ordering: .relaxed)
            guard let history = self.conversations.ready(request, index: i) else { continue }
            try await self.send(request, index: i, due: due, origin: origin, history: history)
        }
    }

    /// The HTTP/2 connection a request goes on.
    private func key(for request: RunPlan.Request, index: Int) -> String {
        self.originVia == .xff ? "slot-\(index % self.connections)" : request.address
    }

    /// Dials for `key`: with a PROXY v2 header carrying the key's address in that mode.
    private func connect(key: String) async throws -> HTTP2ConnectionHandle {
        try await HTTP2Client.connect(
            host: self.host, port: self.port, group: self.group, configuration: self.configuration,
            socketHandlers: self.socketHandlers(address: key))
    }

    /// The PROXY v2 writer for `address` (nil with `X-Forwarded-For`).
    func socketHandlers(address: String) -> (@Sendable (any Channel) throws -> Void)? {
        guard self.originVia == .proxyV2 else { return nil }
        let port = self.port, host = self.host
        return { channel in
            // The source port is the origin's ephemeral port, as a balancer would report it.
            let sourcePort = channel.localAddress?.port ?? 40_000
            guard
                let header = ProxyV2Header.encode(
                    source: address, sourcePort: sourcePort, destination: host, destinationPort: port)
            else { throw ChannelError.badInterfaceAddressFamily }
            try channel.pipeline.syncOperations.addHandler(ProxyV2Header.Writer(header: header), position: .first)
        }
    }

    /// Waits until every sent request closed, at most `timeout`.
    package func drain(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while self.outstanding > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Closes the connections.
    package func close() {
        for handle in self.handles.withLock({ Array($0.values) }) { handle.channel.close(promise: nil) }
        self.http1.closeAll()
    }

    private func send(
        _ request: RunPlan.Request, index: Int, due: NIODeadline, origin: NIODeadline, history: [String]
    ) async throws {
        var head = HTTPRequest(method: .post, scheme: "http", authority: self.host, path: "/v1/chat/completions")
        head.headerFields[.contentType] = "application/json"
        if self.originVia == .xff { head.headerFields[HTTPField.Name("x-forwarded-for")!] = request.address }
        head.headerFields[HTTPField.Name(FleetHeader.requestID)!] = request.id
        if let slo = self.ttftObjective { head.headerFields[HTTPField.Name(FleetHeader.sloTTFT)!] = "\(slo)" }
        let body = ByteBuffer(string: Self.body(for: request, history: history))
        let requestHead = head
        let finish: @Sendable (RequestResult, String) -> Void = { result, answer in
            self.results.withLock { $0.append(result) }
            self.inFlight.subtract(1, ordering: .relaxed)
            if request.hasNextTurn, let next = self.conversations.answered(request, index: index, answer: answer) {
                // The next turn was due before this answer closed: it leaves now.
                Task {
                    try? await self.send(
                        next.request, index: next.index, due: .now(), origin: origin, history: next.history)
                }
            }
        }
        if request.http1 {
            let key = self.originVia == .xff ? "-" : request.address
            self.http1.send(requestHead, body: body, key: key, socketHandlers: self.socketHandlers(address: key)) {
                Self.exchange(request, index: index, due: due, origin: origin, finish: finish)
            }
            return
        }
        let key = self.key(for: request, index: index)
        var handle = self.handles.withLock { $0[key] }
        if handle == nil || handle?.channel.isActive == false {
            handle = try? await self.connect(key: key)
            if let handle { self.handles.withLock { $0[key] = handle } }
        }
        guard let handle else {
            let (result, _) = Self.exchange(request, index: index, due: due, origin: origin, finish: finish)
            var failed = result
            failed.error = "connect_failed"
            return finish(failed, "")
        }
        handle.execute { connection in
            let (result, delegate) = Self.exchange(request, index: index, due: due, origin: origin, finish: finish)
            do {
                let stream = try connection.openStream(requestHead, endStream: false, delegate: delegate)
                delegate.stream = stream
                stream.sendData(body, endStream: true)
            } catch {
                var failed = result
                failed.error = "open_failed"
                failed.totalMicros = 0
                finish(failed, "")
            }
        }
    }

    /// The result and the stream delegate of a request leaving now (on its connection's loop).
    static func exchange(
        _ request: RunPlan.Request, index: Int, due: NIODeadline, origin: NIODeadline,
        finish: @escaping @Sendable (RequestResult, String) -> Void
    ) -> (RequestResult, ClientStream) {
        let now = NIODeadline.now()
        let sentAt = Double((now - origin).nanoseconds) / 1e9
        let result = RequestResult(index: index, sentAt: sentAt, lagMicros: Int(max(0, (now - due).nanoseconds) / 1000))
        return (result, ClientStream(request: request, result: result, start: now, done: finish))
    }

    /// A prompt of about `tokens` tokens (4 bytes each, as the gateway estimates), a function of `seed`.
    static func prompt(tokens: Int, seed: Int) -> String {
        let words = ["fleet", "road", "quiet", "city", "north", "charge", "river", "light"]
        var prompt = ""
        var i = seed
        while prompt.utf8.count < tokens * 4 {
            prompt += words[i & 7] + " "
            i = i >> 3 | (i & 7) << 37
        }
        return prompt
    }

    /// The request body: for a later turn, the conversation so far (each earlier turn's prompt
    /// and the answer the client received for it, JSON-escaped), then this turn's prompt; the
    /// model, `max_tokens` and the seed.
    static func body(for request: RunPlan.Request, history: [String] = []) -> String {
        var messages: [String] = []
        for (i, text) in history.enumerated() {
            let role = i % 2 == 0 ? "user" : "assistant"
            messages.append(#"{"role":"\#(role)","content":\#(Self.jsonString(text))}"#)
        }
        messages.append(
            #"{"role":"user","content":"\#(Self.prompt(tokens: request.promptTokens, seed: request.seed))"}"#)
        return
            #"{"model":"\#(request.model)","stream":\#(request.streaming),"max_tokens":\#(request.maxTokens),"seed":\#(request.seed),"messages":[\#(messages.joined(separator: ","))]}"#
    }

    static func jsonString(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
