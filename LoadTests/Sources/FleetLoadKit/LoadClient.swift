import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
package import NIOCore
package import Synchronization

/// Open-loop clients: sends every planned request at its planned time, whatever happened to the
/// ones before (a closed loop would hide queueing), over a few HTTP/2 connections with many
/// streams each. The harness is the gateway's trusted proxy and says where each client is with
/// `X-Forwarded-For`. Its own lag (how late a request left) is measured per request.
package final class LoadClient: Sendable {
    let host: String
    let port: Int
    let group: any EventLoopGroup
    let connections: Int
    let ttftObjective: Int?
    private let handles = Mutex<[HTTP2ConnectionHandle]>([])
    private let results = Mutex<[RequestResult]>([])
    private let inFlight = Atomic<Int>(0)
    let configuration = HTTP2Configuration(
        maxConcurrentStreams: 4096, connectionWindowSize: 1 << 24, idleTimeout: nil, stallTimeout: nil)

    package init(host: String, port: Int, group: any EventLoopGroup, connections: Int, ttftObjective: Int?) {
        self.host = host
        self.port = port
        self.group = group
        self.connections = connections
        self.ttftObjective = ttftObjective
    }

    /// Requests sent and not yet closed.
    package var outstanding: Int { self.inFlight.load(ordering: .relaxed) }

    /// Results so far (in completion order).
    package var completed: [RequestResult] { self.results.withLock { $0 } }

    /// Sends `requests` at their times (seconds after `origin`); returns when the last was sent.
    package func run(_ requests: [RunPlan.Request], origin: NIODeadline) async throws {
        for _ in 0..<self.connections {
            let handle = try await self.connect()
            self.handles.withLock { $0.append(handle) }
        }
        for (i, request) in requests.enumerated() {
            let due = origin + .nanoseconds(Int64(request.at * 1e9))
            let wait = due - .now()
            if wait.nanoseconds > 0 { try await Task.sleep(nanoseconds: UInt64(wait.nanoseconds)) }
            let slot = i % self.connections
            var handle = self.handles.withLock { $0[slot] }
            if !handle.channel.isActive {
                handle = (try? await self.connect()) ?? handle
                self.handles.withLock { $0[slot] = handle }
            }
            self.send(request, index: i, due: due, origin: origin, on: handle)
        }
    }

    private func connect() async throws -> HTTP2ConnectionHandle {
        try await HTTP2Client.connect(
            host: self.host, port: self.port, group: self.group, configuration: self.configuration)
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
        for handle in self.handles.withLock({ $0 }) { handle.channel.close(promise: nil) }
    }

    private func send(
        _ request: RunPlan.Request, index: Int, due: NIODeadline, origin: NIODeadline, on handle: HTTP2ConnectionHandle
    ) {
        var head = HTTPRequest(method: .post, scheme: "http", authority: self.host, path: "/v1/chat/completions")
        head.headerFields[.contentType] = "application/json"
        head.headerFields[HTTPField.Name("x-forwarded-for")!] = request.address
        head.headerFields[HTTPField.Name(FleetHeader.requestID)!] = request.id
        if let slo = self.ttftObjective { head.headerFields[HTTPField.Name(FleetHeader.sloTTFT)!] = "\(slo)" }
        let body = ByteBuffer(string: Self.body(for: request))
        let requestHead = head
        self.inFlight.add(1, ordering: .relaxed)
        handle.execute { connection in
            let now = NIODeadline.now()
            let sentAt = Double((now - origin).nanoseconds) / 1e9
            let result = RequestResult(index: index, sentAt: sentAt, lagMicros: Int(max(0, (now - due).nanoseconds) / 1000))
            let delegate = ClientStream(request: request, result: result, start: now) { result in
                self.results.withLock { $0.append(result) }
                self.inFlight.subtract(1, ordering: .relaxed)
            }
            do {
                let stream = try connection.openStream(requestHead, endStream: false, delegate: delegate)
                delegate.stream = stream
                stream.sendData(body, endStream: true)
            } catch {
                var failed = result
                failed.error = "open_failed"
                failed.totalMicros = 0
                self.results.withLock { $0.append(failed) }
                self.inFlight.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// The request body: a prompt of about `promptTokens` tokens (4 bytes each, as the gateway
    /// estimates), earlier turns for a conversation, the model, `max_tokens` and the seed.
    static func body(for request: RunPlan.Request) -> String {
        let words = ["fleet", "road", "quiet", "city", "north", "charge", "river", "light"]
        var prompt = ""
        var i = request.seed
        while prompt.utf8.count < request.promptTokens * 4 {
            prompt += words[i & 7] + " "
            i = i >> 3 | (i & 7) << 37
        }
        var messages: [String] = []
        for turn in 0..<request.priorTurns {
            messages.append(
                turn % 2 == 0
                    ? #"{"role":"user","content":"Earlier question \#(turn)"}"#
                    : #"{"role":"assistant","content":"Earlier answer \#(turn)"}"#)
        }
        messages.append(#"{"role":"user","content":"\#(prompt)"}"#)
        return #"{"model":"\#(request.model)","stream":\#(request.streaming),"max_tokens":\#(request.maxTokens),"seed":\#(request.seed),"messages":[\#(messages.joined(separator: ","))]}"#
    }
}
