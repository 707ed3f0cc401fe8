public import AsyncHTTPClient
public import FleetProtocol
import Foundation
public import NIOCore
import NIOHTTP1
import Synchronization

/// The `openai-local` engine: the bridge to an inference runtime running as its own process on
/// the car (llama.cpp's server, llama-cpp-python, vLLM, Ollama, TensorRT-LLM behind an
/// OpenAI-compatible front), reached over HTTP on loopback.
///
/// - A job is forwarded as the client's request with the model name mapped, `stream: true` and
///   usage requested; each SSE token is passed on the moment it arrives.
/// - Back-pressure: while the tunnel stream cannot take more, the upstream body is not read, so
///   the runtime's socket fills and it stops sending.
/// - Cancellation closes the upstream request; servers that watch for disconnects (llama.cpp,
///   llama-cpp-python, vLLM) stop generating.
/// - Upstream errors and timeouts become ``EngineError``s with codes (`upstream_unavailable`,
///   `upstream_status_<n>`, `upstream_timeout`, `upstream_bad_stream`); upstream text is not copied
///   into them beyond its error message's first 200 characters.
/// - Rates are measured from every finished job — prefill as prompt tokens ÷ time to first
///   token (prompts of 32 tokens or more: shorter ones measure the runtime's fixed overhead),
///   decode as tokens after the first ÷ the time they took — and reported in ``models``, so the
///   gateway learns from what the runtime really does. Prompt tokens come from the runtime's
///   usage when it sends one, else from the agent's estimate.
public final class OpenAILocalEngine: InferenceEngine, Sendable {
    public struct Configuration: Sendable {
        /// The runtime's base URL, ending in `/v1`.
        public var baseURL: String
        /// Advertised model id → the runtime's model id. Empty: advertise the runtime's own ids.
        public var models: [String: String]
        /// Jobs the runtime really runs at once (llama-cpp-python's server: 1 — it aborts a running
        /// request when another arrives).
        public var slots: Int
        /// Rates assumed until the first job is measured.
        public var initialDecodeTokensPerSecond: Double
        public var initialPrefillTokensPerSecond: Double
        /// How long the runtime may take to answer with its first token, and the whole job.
        public var firstTokenTimeout: TimeAmount
        public var jobTimeout: TimeAmount
        /// How long ``OpenAILocalEngine/connect(_:client:)`` waits for `GET /models`.
        public var discoveryTimeout: TimeAmount = .seconds(5)
        /// The model's chat template, for continuations from text through `/v1/completions`;
        /// nil: the engine cannot continue another engine's answer (the hello says `none`).
        public var chatTemplate: ChatTemplate? = .smolLM2
        /// What the runtime's prompt cache keeps, as configured where it was started (llama-cpp-python:
        /// `--cache true`; `scripts/real-model.sh`); nil: not known (the gateway learns it).
        public var promptCache: PromptCacheCapacity?

        public init(
            baseURL: String, models: [String: String] = [:], slots: Int = 1, initialDecodeTokensPerSecond: Double = 20,
            initialPrefillTokensPerSecond: Double = 200, firstTokenTimeout: TimeAmount = .seconds(60),
            jobTimeout: TimeAmount = .seconds(600)
        ) {
            self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
            self.models = models
            self.slots = slots
            self.initialDecodeTokensPerSecond = initialDecodeTokensPerSecond
            self.initialPrefillTokensPerSecond = initialPrefillTokensPerSecond
            self.firstTokenTimeout = firstTokenTimeout
            self.jobTimeout = jobTimeout
        }
    }

    public let configuration: Configuration
    let client: HTTPClient
    /// Advertised id → upstream id.
    let mapping: [String: String]
    private let rates: Mutex<[String: ModelOffer]>
    /// Models with at least one measurement of each rate (the first replaces the configured guess).
    private let measured = Mutex<(prefill: Set<String>, decode: Set<String>)>(([], []))
    private let active = Atomic<Int>(0)
    private let cancelledJobs = Atomic<Int>(0)

    /// Asks the runtime for its models (`GET /models`) and builds the engine.
    /// - Throws: ``EngineError`` naming the URL when the runtime does not answer, or the model
    ///   that a mapping names and the runtime does not serve.
    public static func connect(_ configuration: Configuration, client: HTTPClient) async throws -> OpenAILocalEngine {
        let url = configuration.baseURL + "/models"
        let served: [String]
        do {
            let response = try await client.execute(
                HTTPClientRequest(url: url), timeout: configuration.discoveryTimeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else {
                throw EngineError(
                    code: "upstream_status_\(response.status.code)",
                    message: "GET \(url) answered \(response.status.code)")
            }
            served = try JSON.decode(ModelIDs.self, from: body.readableBytesView).data.map(\.id)
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(code: "upstream_unavailable", message: "GET \(url) failed: \(error)")
        }
        var mapping = configuration.models
        if mapping.isEmpty {
            mapping = Dictionary(uniqueKeysWithValues: served.map { ($0, $0) })
        }
        for (advertised, upstream) in mapping where !served.contains(upstream) {
            throw EngineError(
                code: "model_not_found",
                message:
                    "model '\(advertised)' maps to '\(upstream)', which \(url) does not list (it lists: \(served.joined(separator: ", ")))"
            )
        }
        guard !mapping.isEmpty else { throw EngineError(code: "model_not_found", message: "\(url) lists no model") }
        return OpenAILocalEngine(configuration: configuration, client: client, mapping: mapping)
    }

    init(configuration: Configuration, client: HTTPClient, mapping: [String: String]) {
        self.configuration = configuration
        self.client = client
        self.mapping = mapping
        self.rates = Mutex(
            Dictionary(
                uniqueKeysWithValues: mapping.keys.map {
                    (
                        $0,
                        ModelOffer(
                            id: $0, decodeTokensPerSecond: configuration.initialDecodeTokensPerSecond,
                            prefillTokensPerSecond: configuration.initialPrefillTokensPerSecond)
                    )
                }))
    }

    /// The models with the rates measured so far.
    public var models: [ModelOffer] { self.rates.withLock { $0.values.sorted { $0.id < $1.id } } }
    public var slots: Int { self.configuration.slots }
    public var measuresRates: Bool { true }
    /// From text, through the chat template (`prefix`), when one is configured.
    public var continuation: ContinuationMode { self.configuration.chatTemplate == nil ? .none : .prefix }
    public var promptCache: PromptCacheCapacity? { self.configuration.promptCache }
    /// Jobs running now, and jobs cancelled since start.
    public var activeJobs: Int { self.active.load(ordering: .relaxed) }
    public var jobsCancelled: Int { self.cancelledJobs.load(ordering: .relaxed) }

    public func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle {
        let run = OpenAILocalJob(engine: self, job: job, eventLoop: eventLoop, sink: sink)
        self.active.add(1, ordering: .relaxed)
        run.begin()
        return run
    }

    func jobEnded(cancelled: Bool) {
        self.active.subtract(1, ordering: .relaxed)
        if cancelled { self.cancelledJobs.add(1, ordering: .relaxed) }
    }

    /// Folds one job's measurement into the model's rates: the first replaces the configured
    /// guess, later ones are averaged in (EWMA, α = 0.5: a runtime's speed follows what else the car is doing).
    func record(model: String, prefillTokensPerSecond: Double?, decodeTokensPerSecond: Double?) {
        self.measured.withLock { measured in
            self.rates.withLock { rates in
                guard var offer = rates[model] else { return }
                if let p = prefillTokensPerSecond, p.isFinite, p > 0 {
                    let first = measured.prefill.insert(model).inserted
                    offer.prefillTokensPerSecond = first ? p : 0.5 * offer.prefillTokensPerSecond + 0.5 * p
                }
                if let d = decodeTokensPerSecond, d.isFinite, d > 0 {
                    let first = measured.decode.insert(model).inserted
                    offer.decodeTokensPerSecond = first ? d : 0.5 * offer.decodeTokensPerSecond + 0.5 * d
                }
                rates[model] = offer
            }
        }
    }
}

/// What the engine reads of a runtime's answers: only the fields it needs, so runtimes that
/// omit OpenAI's optional ones (`created`, `owned_by`, an error's `type`) still work.
private struct ModelIDs: Decodable {
    struct Model: Decodable { var id: String }
    var data: [Model]
}

private struct ErrorMessage: Decodable {
    struct Detail: Decodable { var message: String }
    var error: Detail
}

/// One forwarded job. Lives on its event loop; the upstream is read by a task that hops to the
/// loop for every token.
private final class OpenAILocalJob: InferenceJobHandle {
    let engine: OpenAILocalEngine
    let job: InferenceJob
    let eventLoop: any EventLoop
    weak var sink: (any TokenSink)?
    var task: Task<Void, Never>?
    var timers: [Scheduled<Void>] = []
    var done = false
    var waiting: CheckedContinuation<Void, Never>?
    // Measurement.
    let sentAt = NIODeadline.now()
    var firstAt: NIODeadline?
    var lastAt: NIODeadline?
    var tokens = 0

    init(engine: OpenAILocalEngine, job: InferenceJob, eventLoop: any EventLoop, sink: any TokenSink) {
        self.engine = engine
        self.job = job
        self.eventLoop = eventLoop
        self.sink = sink
    }

    func begin() {
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        let request: HTTPClientRequest
        do {
            request = try self.upstreamRequest()
        } catch {
            self.eventLoop.execute {
                loopBound.value.fail(error as? EngineError ?? EngineError(code: "bad_request", message: "\(error)"))
            }
            return
        }
        let engine = self.engine
        let eventLoop = self.eventLoop
        // Watchdogs on the loop: the runtime may answer its headers at once and then stall.
        self.timers = [
            eventLoop.scheduleTask(in: engine.configuration.firstTokenTimeout) {
                let job = loopBound.value
                guard job.firstAt == nil else { return }
                job.timedOut("no token from the inference runtime within \(engine.configuration.firstTokenTimeout)")
            },
            eventLoop.scheduleTask(in: engine.configuration.jobTimeout) {
                loopBound.value.timedOut("the job ran longer than \(engine.configuration.jobTimeout)")
            },
        ]
        self.task = Task {
            do {
                let response = try await engine.client.execute(
                    request, deadline: .now() + engine.configuration.firstTokenTimeout)
                guard response.status == .ok else {
                    let body = try? await response.body.collect(upTo: 64 * 1024)
                    let message = body.flatMap { try? JSON.decode(ErrorMessage.self, from: $0.readableBytesView) }?
                        .error.message.prefix(200)
                    throw EngineError(
                        code: "upstream_status_\(response.status.code)",
                        message:
                            "the inference runtime answered \(response.status.code)\(message.map { ": \($0)" } ?? "")")
                }
                var decoder = SSE.Decoder()
                for try await part in response.body {
                    // Every chunk of a body part is read here and handed to the loop in one hop
                    // (issue #19: a decode, an encode and a hop per chunk were most of the agent's
                    // relay cost); ChunkScanner reads them without Foundation's decoder.
                    var chunks: [ChunkScanner.Chunk] = []
                    for event in try decoder.feed(part) where !event.isDone {
                        guard let payload = event.payload else { continue }  // a comment or bare fields
                        let scanned: ChunkScanner.Chunk
                        do {
                            scanned = try ChunkScanner.scan(payload, range: 0..<payload.readableBytes)
                        } catch {
                            throw EngineError(code: "upstream_bad_stream", message: "a chunk was not JSON")
                        }
                        guard scanned.hasChoices || scanned.hasUsage else {
                            throw EngineError(
                                code: "upstream_bad_stream", message: "a chunk was not an OpenAI stream chunk")
                        }
                        chunks.append(scanned)
                    }
                    guard !chunks.isEmpty else { continue }
                    let batch = chunks
                    let wantsMore = try await eventLoop.submit { loopBound.value.deliver(batch) }.get()
                    if !wantsMore {
                        await withCheckedContinuation { continuation in
                            eventLoop.execute { loopBound.value.park(continuation) }
                        }
                    }
                }
                eventLoop.execute { loopBound.value.complete() }
            } catch is CancellationError {
                return
            } catch let error as EngineError {
                eventLoop.execute { loopBound.value.fail(error) }
            } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
                eventLoop.execute {
                    loopBound.value.fail(
                        EngineError(code: "upstream_timeout", message: "no answer from the inference runtime in time"))
                }
            } catch let error as HTTPClientError where error == .cancelled {
                return
            } catch is SSE.Decoder.TooLarge {
                eventLoop.execute {
                    loopBound.value.fail(
                        EngineError(code: "upstream_bad_stream", message: "an event exceeded the size limit"))
                }
            } catch {
                eventLoop.execute {
                    loopBound.value.fail(
                        EngineError(code: "upstream_unavailable", message: "the inference runtime failed: \(error)"))
                }
            }
        }
    }

    /// The client's request, with the runtime's model name, streaming with usage.
    private func upstreamRequest() throws -> HTTPClientRequest {
        guard let upstreamModel = self.engine.mapping[self.job.model] else {
            throw EngineError(code: "model_not_found", message: "this car does not serve '\(self.job.model)'")
        }
        var body = self.job.body
        // Every field the client sent goes through byte for byte; only these are the agent's.
        var remove: Set<String> = ["model", "stream", "stream_options"]
        var append: [(String, String)] = [
            ("model", JSON.string(upstreamModel)), ("stream", "true"), ("stream_options", "{\"include_usage\":true}"),
        ]
        if self.job.continuesText, let template = self.engine.configuration.chatTemplate, let messages = body.messages {
            // Continue the final assistant message: the chat path would start a new one.
            body.messages = nil
            remove.formUnion(["messages", "prompt", "stop"])
            append.append(("prompt", JSON.string(template.continuationPrompt(messages))))
            append.append(("stop", JSON.string((body.stop?.values ?? []) + [template.endOfMessage])))
        }
        let chat = body.messages != nil
        var request = HTTPClientRequest(
            url: self.engine.configuration.baseURL + (chat ? "/chat/completions" : "/completions"))
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "accept", value: "text/event-stream")
        let raw = self.job.rawBody ?? JSON.buffer(self.job.body)
        request.body = .bytes(JSONBody.editing(raw, removing: remove, appending: append) ?? raw)
        return request
    }

    /// Passes the chunks' text on; true while the sink wants more.
    private func deliver(_ chunks: [ChunkScanner.Chunk]) -> Bool {
        for chunk in chunks {
            guard !self.done, let sink = self.sink else { return false }
            if chunk.hasUsage {
                self.usage = Usage(promptTokens: chunk.promptTokens ?? 0, completionTokens: chunk.completionTokens ?? 0)
            }
            if let choice = chunk.choice { self.deliver(choice, to: sink) }
            for choice in chunk.otherChoices { self.deliver(choice, to: sink) }
        }
        return self.sink?.wantsMore ?? false
    }

    private func deliver(_ choice: ChunkScanner.Choice, to sink: any TokenSink) {
        if let reason = choice.finishReason { self.finishReason = reason }
        guard let text = choice.content, !text.isEmpty else { return }
        let now = NIODeadline.now()
        if self.firstAt == nil { self.firstAt = now }
        self.lastAt = now
        self.tokens += 1
        sink.emit(token: text)
    }

    var usage: Usage?
    var finishReason: String?

    private func park(_ continuation: CheckedContinuation<Void, Never>) {
        if self.done || (self.sink?.wantsMore ?? false) {
            continuation.resume()
        } else {
            self.waiting = continuation
        }
    }

    private func complete() {
        guard !self.done else { return }
        let sink = self.sink
        self.end(cancelled: false)
        let completion = self.usage?.completionTokens ?? self.tokens
        let prompt = self.usage?.promptTokens ?? self.job.prompt.estimatedTokens
        if let first = self.firstAt, let last = self.lastAt {
            let ttft = Double((first - self.sentAt).nanoseconds) / 1e9
            let decode = self.tokens >= 4 ? Double(self.tokens - 1) / (Double((last - first).nanoseconds) / 1e9) : nil
            self.engine.record(
                model: self.job.model, prefillTokensPerSecond: prompt >= 32 ? Double(prompt) / ttft : nil,
                decodeTokensPerSecond: decode)
        }
        sink?.finish(reason: self.finishReason ?? "stop", promptTokens: prompt, completionTokens: completion)
    }

    /// A watchdog fired: the upstream request is closed (the runtime stops) and the job fails.
    private func timedOut(_ message: String) {
        guard !self.done else { return }
        self.task?.cancel()
        self.fail(EngineError(code: "upstream_timeout", message: message))
    }

    private func fail(_ error: EngineError) {
        guard !self.done else { return }
        let sink = self.sink
        self.end(cancelled: false)
        sink?.fail(error)
    }

    private func end(cancelled: Bool) {
        guard !self.done else { return }
        self.done = true
        self.timers.forEach { $0.cancel() }
        self.waiting?.resume()
        self.waiting = nil
        self.engine.jobEnded(cancelled: cancelled)
    }

    func cancel() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.done else { return }
        self.task?.cancel()
        self.end(cancelled: true)
    }

    func resume() {
        self.waiting?.resume()
        self.waiting = nil
    }
}
