import ArgumentParser
import FleetHTTP2
import Foundation
import HTTPTypes
import Histogram
import NIOCore
import NIOPosix
import Synchronization

/// The live load driver: streams chat completions over h2c at a fixed open-loop rate (or one at
/// a time) and reports time to first token and stream time, measured on the client.
///
/// TTFT is the time from sending the request to the first SSE event carrying content, so a
/// relay that forwards the role chunk early gains nothing. It stops by itself after `--duration`
/// (plus a drain of at most 30 s) and targets the address it is given — loopback only.
struct StreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stream",
        abstract: "Open-loop streams at a fixed rate against a running endpoint (the relay benchmark's client).")

    @Option(help: "host:port of an h2c OpenAI endpoint.") var target = "127.0.0.1:8080"
    @Option(help: "Model to request.") var model = "fleet-8b"
    @Option(help: "max_tokens per stream.") var maxTokens = 32
    @Option(help: "Connections to spread streams over.") var connections = 8
    @Option(help: "Streams started per second (open loop). 0: one at a time.") var rate = 0.0
    @Option(help: "Seconds to send for (open loop).") var duration = 10.0
    @Option(help: "Streams to send one after another when --rate is 0.") var count = 200
    @Option(help: "Label printed with the result.") var label = "run"

    func run() async throws {
        let parts = self.target.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--target must be host:port") }
        guard parts[0] == "127.0.0.1" || parts[0] == "localhost" || parts[0] == "::1" else {
            throw ValidationError("--target must be on loopback")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var handles: [HTTP2ConnectionHandle] = []
        let config = HTTP2Configuration(
            maxConcurrentStreams: 1024, connectionWindowSize: 1 << 24, idleTimeout: nil, stallTimeout: nil)
        for _ in 0..<max(1, self.rate == 0 ? 1 : self.connections) {
            handles.append(
                try await HTTP2Client.connect(host: String(parts[0]), port: port, group: group, configuration: config))
        }
        let stats = Stats()
        let body = ByteBuffer(
            string: """
                {"model":"\(self.model)","stream":true,"max_tokens":\(self.maxTokens),"messages":[{"role":"user","content":"Benchmark prompt of a few words"}]}
                """)
        var request = HTTPRequest(
            method: .post, scheme: "http", authority: String(parts[0]), path: "/v1/chat/completions")
        request.headerFields[.contentType] = "application/json"
        let clock = ContinuousClock()
        let started = clock.now
        if self.rate > 0 {
            let interval = Duration.seconds(1 / self.rate)
            let total = Int(self.rate * self.duration)
            for i in 0..<total {
                let due = started + interval * i
                if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                Self.start(request, body: body, on: handles[i % handles.count], stats: stats)
            }
            try await waitForCompletion(stats: stats, expected: total)
        } else {
            for _ in 0..<self.count {
                let done = stats.completed
                Self.start(request, body: body, on: handles[0], stats: stats)
                while stats.completed == done { try await Task.sleep(for: .microseconds(50)) }
            }
        }
        let elapsed = clock.now - started
        for handle in handles { try? await handle.channel.close() }
        try await group.shutdownGracefully()
        print(stats.report(label: self.label, elapsed: elapsed))
    }

    func waitForCompletion(stats: Stats, expected: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while stats.completed < expected && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func start(_ request: HTTPRequest, body: ByteBuffer, on handle: HTTP2ConnectionHandle, stats: Stats) {
        handle.execute { connection in
            let delegate = LoadStream(stats: stats, start: NIODeadline.now())
            do {
                let stream = try connection.openStream(request, endStream: false, delegate: delegate)
                delegate.stream = stream
                stream.sendData(body, endStream: true)
            } catch {
                stats.finish(ttft: nil, total: nil, ok: false)
            }
        }
    }
}

/// Measures one stream.
final class LoadStream: HTTPStreamDelegate {
    let stats: Stats
    let start: NIODeadline
    var stream: HTTP2Stream?
    var ttft: Int64?
    var status = 0
    /// Scans for `"content":"` followed by a character other than `"`: the first token.
    var matched = 0
    static let needle = Array("\"content\":\"".utf8)

    init(stats: Stats, start: NIODeadline) {
        self.stats = stats
        self.start = start
    }

    func streamDidReceiveResponse(_ response: HTTPResponse) { self.status = response.status.code }

    func streamDidReceiveData(_ data: ByteBuffer) {
        self.stream?.consume(data.readableBytes)
        guard self.ttft == nil else { return }
        for byte in data.readableBytesView {
            if self.matched == Self.needle.count {
                if byte != UInt8(ascii: "\"") {
                    self.ttft = (NIODeadline.now() - self.start).nanoseconds
                    return
                }
                self.matched = 0
            }
            self.matched = byte == Self.needle[self.matched] ? self.matched + 1 : (byte == Self.needle[0] ? 1 : 0)
        }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {}

    func streamDidClose(error: HTTPStreamError?) {
        let total = (NIODeadline.now() - self.start).nanoseconds
        self.stats.finish(ttft: self.ttft, total: total, ok: error == nil && self.status == 200 && self.ttft != nil)
    }
}

/// Results, shared across loops.
final class Stats: Sendable {
    private let state = Mutex<(ttft: Histogram<UInt64>, total: Histogram<UInt64>, ok: Int, failed: Int)>(
        (Histogram(highestTrackableValue: 600_000_000), Histogram(highestTrackableValue: 600_000_000), 0, 0))

    var completed: Int { self.state.withLock { $0.ok + $0.failed } }

    func finish(ttft: Int64?, total: Int64?, ok: Bool) {
        self.state.withLock { s in
            if ok, let ttft, let total {
                _ = s.ttft.record(UInt64(ttft / 1000))
                _ = s.total.record(UInt64(total / 1000))
                s.ok += 1
            } else {
                s.failed += 1
            }
        }
    }

    func report(label: String, elapsed: Duration) -> String {
        self.state.withLock { s in
            func ms(_ h: Histogram<UInt64>, _ p: Double) -> String {
                String(format: "%.3f", Double(h.valueAtPercentile(p)) / 1000)
            }
            return """
                {"label":"\(label)","ok":\(s.ok),"failed":\(s.failed),"seconds":\(String(format: "%.2f", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)),\
                "ttft_p50_ms":\(ms(s.ttft, 50)),"ttft_p99_ms":\(ms(s.ttft, 99)),"stream_p50_ms":\(ms(s.total, 50)),"stream_p99_ms":\(ms(s.total, 99))}
                """
        }
    }
}
