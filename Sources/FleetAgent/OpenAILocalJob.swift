import AsyncHTTPClient
import FleetProtocol
import NIOCore
import NIOHTTP1

/// One forwarded job. Lives on its event loop, and so does everything that reads the runtime's
/// answer (``OpenAILocalResponseDelegate``): a body part is split into SSE events, each chunk read
/// by ``ChunkScanner`` and its text handed to the sink in the same call — no task, no hop and no
/// Foundation decode per chunk (issue #19: an async iterator with a hop to the loop per body part
/// was most of the agent's relay cost).
///
/// Back-pressure: while the sink does not want more, the body part's future stays pending, so
/// async-http-client stops reading the runtime's socket.
final class OpenAILocalJob: InferenceJobHandle {
    let engine: OpenAILocalEngine
    let job: InferenceJob
    let eventLoop: any EventLoop
    weak var sink: (any TokenSink)?
    private var task: HTTPClient.Task<Void>?
    /// The limits on the job, and the one timer that keeps them.
    private let watchdog: RuntimeWatchdog
    private var timer: Scheduled<Void>?
    private var done = false
    /// The body part async-http-client waits on while the sink is full.
    private var waiting: EventLoopPromise<Void>?
    private var status: UInt = 0
    private var errorBody = ByteBuffer()
    private var decoder = SSE.Decoder()
    private var usage: Usage?
    private var finishReason: String?
    // Measurement.
    let sentAt = NIODeadline.now()
    private var firstAt: NIODeadline?
    private var lastAt: NIODeadline?
    /// When the runtime last sent a body part (the watchdog's silence limit).
    private var lastReadAt: NIODeadline?
    private var tokens = 0

    init(engine: OpenAILocalEngine, job: InferenceJob, eventLoop: any EventLoop, sink: any TokenSink) {
        self.engine = engine
        self.job = job
        self.eventLoop = eventLoop
        self.sink = sink
        let configuration = engine.configuration
        self.watchdog = RuntimeWatchdog(
            firstTokenTimeout: configuration.firstTokenTimeout, readTimeout: configuration.readTimeout,
            jobTimeout: configuration.jobTimeout, startedAt: self.sentAt)
    }

    func begin() {
        self.eventLoop.preconditionInEventLoop()
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        let request: HTTPClient.Request
        do {
            request = try self.upstreamRequest()
        } catch {
            self.eventLoop.execute {
                loopBound.value.fail(error as? EngineError ?? EngineError(code: "bad_request", message: "\(error)"))
            }
            return
        }
        // One timer on the loop for every limit: the runtime may answer its headers at once and then stall.
        switch self.watchdog.check(now: self.sentAt, firstTokenAt: nil, lastReadAt: nil) {
        case .wait(let deadline): self.arm(deadline)
        case .expired: self.arm(self.sentAt)  // a zero limit fails on the next tick, once the job has started
        }
        // On the job's loop when the client runs there (the agent's default group is its runtime
        // client's), else wherever the client likes, the delegate hopping to the job's loop. Not
        // `.delegateAndChannel(on:)`: async-http-client opens a connection bound to that loop for
        // each such request and closes it after (issue #19: a connect per job, 10 % of the CPU).
        let client = self.engine.client
        let eventLoop = self.eventLoop
        let onJobLoop = self.engine.clientLoops.contains(ObjectIdentifier(eventLoop))
        // No deadline on the request itself: async-http-client's would cover the whole stream;
        // the watchdog cancels it instead.
        self.task = client.execute(
            request: request, delegate: OpenAILocalResponseDelegate(job: loopBound),
            eventLoop: onJobLoop ? .delegate(on: eventLoop) : .indifferent)
    }

    /// Arms the watchdog's timer; when it fires, the job fails if a limit passed, else it is armed again.
    private func arm(_ deadline: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.timer = self.eventLoop.scheduleTask(deadline: deadline) {
            let job = loopBound.value
            guard !job.done else { return }
            let now = NIODeadline.now()
            // While the sink is full the runtime is not read: its silence is ours, not a stall.
            let lastRead = job.waiting == nil ? job.lastReadAt : now
            switch job.watchdog.check(now: now, firstTokenAt: job.firstAt, lastReadAt: lastRead) {
            case .wait(let deadline): job.arm(deadline)
            case .expired(let message): job.timedOut(message)
            }
        }
    }

    /// The client's request, with the runtime's model name, streaming with usage.
    private func upstreamRequest() throws -> HTTPClient.Request {
        guard let upstreamModel = self.engine.upstreamModelJSON[self.job.model] else {
            throw EngineError(code: "model_not_found", message: "this car does not serve '\(self.job.model)'")
        }
        var body = self.job.body
        // Every field the client sent goes through byte for byte; only these are the agent's.
        var remove: Set<String> = ["model", "stream", "stream_options"]
        var append: [(String, String)] = [
            ("model", upstreamModel), ("stream", "true"), ("stream_options", "{\"include_usage\":true}"),
        ]
        if self.job.continuesText, let template = self.engine.configuration.chatTemplate, let messages = body.messages {
            // Continue the final assistant message: the chat path would start a new one.
            body.messages = nil
            remove.formUnion(["messages", "prompt", "stop"])
            append.append(("prompt", JSON.string(template.continuationPrompt(messages))))
            append.append(("stop", JSON.string((body.stop?.values ?? []) + [template.endOfMessage])))
        }
        let chat = body.messages != nil
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "accept", value: "text/event-stream")
        let raw = self.job.rawBody ?? JSON.buffer(self.job.body)
        return try HTTPClient.Request(
            url: self.engine.configuration.baseURL + (chat ? "/chat/completions" : "/completions"), method: .POST,
            headers: headers,
            body: .byteBuffer(JSONBody.editing(raw, removing: remove, appending: append) ?? raw))
    }

    // MARK: The runtime's answer (from ``OpenAILocalResponseDelegate``, on the loop)

    func receivedHead(status: UInt) {
        self.status = status
    }

    /// A body part: its chunks' text goes to the sink now; the future completes when the sink
    /// wants more (at once, usually).
    func receivedBodyPart(_ part: ByteBuffer) -> EventLoopFuture<Void> {
        guard !self.done else { return self.eventLoop.makeSucceededVoidFuture() }
        self.lastReadAt = .now()
        guard self.status == 200 else {
            // An error answer: keep the start of it for its message.
            if self.errorBody.readableBytes < 64 * 1024 {
                var part = part
                self.errorBody.writeBuffer(&part)
            }
            return self.eventLoop.makeSucceededVoidFuture()
        }
        do {
            for event in try self.decoder.feed(part) where !event.isDone {
                guard let payload = event.payload else { continue }  // a comment or bare fields
                let chunk: ChunkScanner.Chunk
                do {
                    chunk = try ChunkScanner.scan(payload, range: 0..<payload.readableBytes)
                } catch {
                    throw EngineError(code: "upstream_bad_stream", message: "a chunk was not JSON")
                }
                guard chunk.hasChoices || chunk.hasUsage else {
                    throw EngineError(code: "upstream_bad_stream", message: "a chunk was not an OpenAI stream chunk")
                }
                guard self.deliver(chunk) else { break }
            }
        } catch let error as EngineError {
            self.abort(error)
        } catch {
            // SSE.Decoder.TooLarge, the only other error a feed throws.
            self.abort(EngineError(code: "upstream_bad_stream", message: "an event exceeded the size limit"))
        }
        if !self.done && self.sink == nil {
            // The stream this job answered is gone: stop the runtime rather than park its body
            // until the job's watchdog fires.
            self.end(cancelled: true)
            self.task?.cancel()
        }
        if self.done || (self.sink?.wantsMore ?? false) { return self.eventLoop.makeSucceededVoidFuture() }
        let promise = self.eventLoop.makePromise(of: Void.self)
        self.waiting = promise
        return promise.futureResult
    }

    func receivedEnd() {
        guard !self.done else { return }
        guard self.status == 200 else {
            let message = (try? JSON.decode(ErrorMessage.self, from: self.errorBody.readableBytesView))?
                .error.message.prefix(200)
            return self.fail(
                EngineError(
                    code: "upstream_status_\(self.status)",
                    message: "the inference runtime answered \(self.status)\(message.map { ": \($0)" } ?? "")"))
        }
        self.complete()
    }

    func receivedError(_ error: any Error) {
        guard !self.done else { return }
        // A cancel of our own (``cancel()``, ``abort(_:)``) has ended the job already; one that
        // was not ours (the client shutting down) fails it now rather than at a watchdog.
        if let error = error as? HTTPClientError {
            if error == .deadlineExceeded || error == .readTimeout {
                return self.fail(
                    EngineError(code: "upstream_timeout", message: "no answer from the inference runtime in time"))
            }
        }
        self.fail(EngineError(code: "upstream_unavailable", message: "the inference runtime failed: \(error)"))
    }

    // MARK: To the sink

    /// Passes one chunk's text on; true while the job runs.
    private func deliver(_ chunk: ChunkScanner.Chunk) -> Bool {
        guard !self.done, let sink = self.sink else { return false }
        if chunk.hasUsage {
            self.usage = Usage(promptTokens: chunk.promptTokens ?? 0, completionTokens: chunk.completionTokens ?? 0)
        }
        if let choice = chunk.choice { self.deliver(choice, to: sink) }
        for choice in chunk.otherChoices { self.deliver(choice, to: sink) }
        return !self.done
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

    /// The watchdog found a limit passed: the upstream request is closed (the runtime stops) and the job fails.
    private func timedOut(_ message: String) {
        self.abort(EngineError(code: "upstream_timeout", message: message))
    }

    /// Fails the job and closes the upstream request. (The job ends first: async-http-client
    /// reports the cancel back at once, and a job still running would take it for a failure.)
    private func abort(_ error: EngineError) {
        guard !self.done else { return }
        self.fail(error)
        self.task?.cancel()
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
        self.timer?.cancel()
        self.timer = nil
        self.resume()
        self.engine.jobEnded(cancelled: cancelled)
    }

    func cancel() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.done else { return }
        self.end(cancelled: true)
        self.task?.cancel()
    }

    func resume() {
        self.waiting?.succeed()
        self.waiting = nil
    }
}
