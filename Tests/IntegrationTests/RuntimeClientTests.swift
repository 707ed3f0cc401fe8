import AsyncHTTPClient
import FleetAgent
import FleetProtocol
import FleetTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

/// The openai-local engine's own HTTP/1.1 client (issue #19) against a runtime on a real socket that
/// answers by model: `ok` streams two tokens, `fail` answers 500, `close` closes mid-stream.
@Suite("openai-local runtime client")
struct RuntimeClientTests {
    @Test(
        "Keep-alive connections are reused; a 500, a close mid-stream and a runtime gone fail the job with their codes",
        .timeLimit(.minutes(1)))
    func failures() async throws {
        let runtime = try await ScriptedRuntime.start()
        let engine = try await OpenAILocalEngine.connect(.init(baseURL: runtime.baseURL, slots: 4), client: .shared)
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        for _ in 0..<3 {
            let sink = try await Self.run(engine, model: "ok", on: loop)
            #expect(sink.tokens == ["a", "b"] && sink.finished == "stop" && sink.failure == nil)
        }
        #expect(runtime.posts.withLockedValue { $0 } == 3)
        #expect(runtime.postConnections.withLockedValue { $0.count } == 1)  // one connection, kept alive

        let failed = try await Self.run(engine, model: "fail", on: loop)
        #expect(failed.failure?.code == "upstream_status_500")
        #expect(failed.failure?.message.contains("no capacity") == true)
        // An error body that never ends fails the job once its first 64 KiB are in, not at a timeout.
        let started = ContinuousClock.now
        let endless = try await Self.run(engine, model: "endless-error", on: loop)
        #expect(endless.failure?.code == "upstream_status_500")
        #expect(ContinuousClock.now - started < .seconds(5))
        // Negative counts are no counts (helper-80: read as 0, they zeroed what the request was charged):
        // the job's own count and the prompt's estimate stand in, as when usage is missing.
        let lying = try await Self.run(engine, model: "lying-usage", on: loop)
        #expect(lying.finished == "stop")
        #expect(lying.counts?.completion == 2 && (lying.counts?.prompt ?? 0) > 0, "\(String(describing: lying.counts))")
        let closed = try await Self.run(engine, model: "close", on: loop)
        #expect(closed.tokens == ["a"])
        #expect(closed.failure?.code == "upstream_unavailable")
        // After a close the next job opens a new connection.
        let again = try await Self.run(engine, model: "ok", on: loop)
        #expect(again.finished == "stop")

        // The runtime goes down: its connections close, new ones are closed at once (not a closed
        // port: a parallel test may bind it again).
        runtime.down.withLockedValue { $0 = true }
        await runtime.closeAll()
        let down = try await Self.run(engine, model: "ok", on: loop)
        #expect(down.failure?.code == "upstream_unavailable")
        #expect(engine.activeJobs == 0)
        try await runtime.channel.close()
    }

    @Test("The hello's context window: the configured one, else vLLM's max_model_len, else not said")
    func contextWindows() async throws {
        let runtime = try await ScriptedRuntime.start()
        let discovered = try await OpenAILocalEngine.connect(.init(baseURL: runtime.baseURL), client: .shared)
        let windows = Dictionary(uniqueKeysWithValues: discovered.models.map { ($0.id, $0.contextTokens) })
        #expect(windows["ok"] == 4_096)
        #expect(windows["fail"] == .some(nil), "a max_model_len that is not a number is not said")
        #expect(windows["close"] == .some(nil))
        var configured = OpenAILocalEngine.Configuration(baseURL: runtime.baseURL, models: ["mine": "ok"])
        configured.contextTokens = 2_048
        let told = try await OpenAILocalEngine.connect(configured, client: .shared)
        #expect(told.models.map(\.contextTokens) == [2_048])
        let mapped = try await OpenAILocalEngine.connect(
            .init(baseURL: runtime.baseURL, models: ["mine": "ok"]), client: .shared)
        #expect(mapped.models.map(\.id) == ["mine"] && mapped.models.map(\.contextTokens) == [4_096])
        try await runtime.channel.close()
    }

    /// Runs one streamed job on `loop` until it finishes or fails.
    static func run(_ engine: OpenAILocalEngine, model: String, on loop: any EventLoop) async throws -> RecordingSink {
        let sink = try await loop.submit { RecordingSink() }.get()
        let body = try JSON.decode(CompletionRequest.self, from: Array(chatBody(model: model, stream: true).utf8))
        let job = InferenceJob(model: model, prompt: body.promptText, maxTokens: 8, stop: [], seed: 1, body: body)
        try await loop.submit { sink.handle = engine.start(job, on: loop, sink: sink) }.get()
        try await waitUntil("the job ends") {
            try await loop.submit { sink.finished != nil || sink.failure != nil }.get()
        }
        return sink
    }
}

/// A runtime on a real socket (NIO's HTTP/1.1 server codec) that lists `ok`, `fail` and `close` and
/// answers a completion by the model its body names.
final class ScriptedRuntime: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let channel: any Channel
    /// Completions received, and the connections they came on.
    let posts: NIOLockedValueBox<Int>
    let postConnections: NIOLockedValueBox<Set<ObjectIdentifier>>
    let open: NIOLockedValueBox<[any Channel]>
    /// Set: every connection is closed as it is accepted, and a request on one still open is not answered.
    let down: NIOLockedValueBox<Bool>
    private var body = ""
    private var path = ""

    var baseURL: String { "http://127.0.0.1:\(self.channel.localAddress!.port!)/v1" }

    private init(
        channel: any Channel, posts: NIOLockedValueBox<Int>, postConnections: NIOLockedValueBox<Set<ObjectIdentifier>>,
        open: NIOLockedValueBox<[any Channel]>, down: NIOLockedValueBox<Bool>
    ) {
        self.channel = channel
        self.posts = posts
        self.postConnections = postConnections
        self.open = open
        self.down = down
    }

    /// One handler per connection sharing the counters; the returned one only holds the listener.
    static func start() async throws -> ScriptedRuntime {
        let posts = NIOLockedValueBox(0)
        let connections = NIOLockedValueBox(Set<ObjectIdentifier>())
        let open = NIOLockedValueBox([any Channel]())
        let down = NIOLockedValueBox(false)
        let listener = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                if down.withLockedValue({ $0 }) { return channel.close() }
                open.withLockedValue { $0.append(channel) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(
                        ScriptedRuntime(
                            channel: channel, posts: posts, postConnections: connections, open: open, down: down))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedRuntime(channel: listener, posts: posts, postConnections: connections, open: open, down: down)
    }

    /// Closes every connection the runtime accepted, and returns once they are closed.
    func closeAll() async {
        for channel in self.open.withLockedValue({ $0 }) { try? await channel.close() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            self.path = head.uri
            self.body = ""
        case .body(let buffer):
            self.body += String(buffer: buffer)
        case .end:
            // Down: a request that raced the close (read in the same loop turn as the close was queued,
            // CI's failure of 2026-12-06) is not answered either.
            if self.down.withLockedValue({ $0 }) { return context.close(promise: nil) }
            self.respond(context: context)
        }
    }

    private func respond(context: ChannelHandlerContext) {
        if self.path.hasSuffix("/models") {
            return self.send(
                context, status: .ok, contentType: "application/json",
                #"{"data":[{"id":"ok","max_model_len":4096},{"id":"fail","max_model_len":"big"},{"id":"close"},{"id":"endless-error"},{"id":"lying-usage"}]}"#
            )
        }
        self.posts.withLockedValue { $0 += 1 }
        let id = ObjectIdentifier(context.channel)
        self.postConnections.withLockedValue { _ = $0.insert(id) }
        if self.body.contains(#""model":"fail""#) {
            return self.send(
                context, status: .internalServerError, contentType: "application/json",
                #"{"error":{"message":"no capacity"}}"#)
        }
        if self.body.contains(#""model":"endless-error""#) {
            // A 500 whose body never ends (helper-80): 128 KiB of it, then nothing, the response left open.
            var head = HTTPResponseHead(version: .http1_1, status: .internalServerError)
            head.headers.add(name: "content-type", value: "application/json")
            head.headers.add(name: "transfer-encoding", value: "chunked")
            context.write(self.wrapOutboundOut(.head(head)), promise: nil)
            let filler = #"{"error":{"message":""# + String(repeating: "e", count: 128 * 1024)
            return context.writeAndFlush(
                self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: filler)))), promise: nil)
        }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "content-type", value: "text/event-stream")
        head.headers.add(name: "transfer-encoding", value: "chunked")
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        for token in self.body.contains(#""model":"close""#) ? ["a"] : ["a", "b"] {
            let chunk =
                #"data: {"choices":[{"index":0,"delta":{"content":"\#(token)"},"finish_reason":null}]}"# + "\n\n"
            context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: chunk)))), promise: nil)
        }
        if self.body.contains(#""model":"close""#) {
            context.flush()
            return context.close(promise: nil)
        }
        var end = #"data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"# + "\n\n"
        if self.body.contains(#""model":"lying-usage""#) {
            end += #"data: {"choices":[],"usage":{"prompt_tokens":-5,"completion_tokens":-100}}"# + "\n\n"
        }
        end += "data: [DONE]\n\n"
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: end)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }

    private func send(_ context: ChannelHandlerContext, status: HTTPResponseStatus, contentType: String, _ body: String)
    {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        head.headers.add(name: "content-type", value: contentType)
        head.headers.add(name: "content-length", value: String(body.utf8.count))
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
    }
}
