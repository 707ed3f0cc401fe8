import FleetHTTP1Client
import FleetProtocol
import NIOCore
import NIOHTTP1

/// One forwarded job. Lives on its event loop, and so does its connection to the runtime
/// (``HTTP1ClientConnection``, from the loop's ``HTTP1ConnectionPool``): a body piece is split into
/// SSE events, each chunk read by ``ChunkScanner`` and its text handed to the sink in the same call
/// — no task, no future, no hop and no Foundation decode per chunk (issue #19). What one read of the
/// runtime's socket brings is written to the tunnel as one batch (``TokenSink/beginBatch()``).
///
/// Back-pressure: while the sink does not want more, the connection stops reading the runtime's
/// socket (``HTTP1ClientConnection/pause()``).
final class OpenAILocalJob: InferenceJobHandle, HTTP1ResponseReceiver {
    let engine: OpenAILocalEngine
    let job: InferenceJob
    let eventLoop: any EventLoop
    weak var sink: (any TokenSink)?
    /// The runtime connection the job is sent on, once the pool gave it one.
    private var connection: HTTP1ClientConnection?
    /// The request, kept to send it again once on a new connection when a parked one turns out closed.
    private var request: (path: String, body: ByteBuffer)?
    private var retried = false
    /// The runtime answered the stream with nothing at all: the request is being asked again without
    /// streaming, for the refusal llama-cpp-python gives only there (``askWhyEmpty(_:)``).
    private var askedWhyEmpty = false
    /// The limits on the job, and the one timer that keeps them.
    private let watchdog: RuntimeWatchdog
    private var timer: Scheduled<Void>?
    private var done = false
    /// The sink is full: the connection does not read.
    private var paused = false
    /// A batch of tokens is open on the sink (this read's).
    private var batching = false
    private var status: UInt = 0
    private var errorBody = ByteBuffer()
    /// The most of an error answer's body kept (its message is in the first bytes); the answer ends there.
    static let errorBodyLimit = 64 * 1024
    private var decoder = SSE.Decoder()
    /// The runtime's usage chunk: its counts (each nil when missing or not a count: the job's own
    /// count or estimate stands in) and details.
    private var usage: (prompt: Int?, completion: Int?, details: UsageDetails?)?
    private var finishReason: String?
    /// The runtime sent a tool call (relayed): a finish reason `tool_calls` is then the answer's end.
    private var calledTools = false
    /// The runtime sent `[DONE]`: what follows is not the answer's.
    private var sawDone = false
    /// The runtime's last token chunk: the next one that differs only in its text is not scanned again.
    private var template = ChunkTemplate()
    // Measurement.
    let sentAt = NIODeadline.now()
    private var firstAt: NIODeadline?
    private var lastAt: NIODeadline?
    /// When the runtime last sent a body piece (the watchdog's silence limit).
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
        let request: (path: String, body: ByteBuffer)
        do {
            request = try self.upstreamRequest()
        } catch {
            let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
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
        self.request = request
        self.engine.runtime.pool(on: self.eventLoop).post(path: request.path, body: request.body, to: self)
    }

    /// Arms the watchdog's timer; when it fires, the job fails if a limit passed, else it is armed again.
    private func arm(_ deadline: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.timer = self.eventLoop.scheduleTask(deadline: deadline) {
            let job = loopBound.value
            guard !job.done else { return }
            let now = NIODeadline.now()
            // While the sink is full the runtime is not read: its silence is ours, not a stall.
            let lastRead = job.paused ? now : job.lastReadAt
            switch job.watchdog.check(now: now, firstTokenAt: job.firstAt, lastReadAt: lastRead) {
            case .wait(let deadline): job.arm(deadline)
            case .expired(let message): job.timedOut(message)
            }
        }
    }

    // MARK: The runtime's answer (from ``HTTP1ClientConnection``, on the loop)

    func exchangeAttached(_ connection: HTTP1ClientConnection) -> Bool {
        guard !self.done else { return false }
        self.connection = connection
        return true
    }

    func exchangeDidReceiveHead(_ head: HTTPResponseHead) {
        self.status = head.status.code
    }

    /// A body piece: its chunks' text goes to the sink now, in this read's batch.
    func exchangeDidReceiveBody(_ part: ByteBuffer) {
        guard !self.done else { return }
        self.lastReadAt = .now()
        guard self.status == 200 else {
            // An error answer: its start, for the message, up to ``errorBodyLimit``; there the answer ends
            // (helper-80: an endless 500 held the job until the gateway's first-token timeout, 15 s).
            let room = Self.errorBodyLimit - self.errorBody.readableBytes
            guard part.readableBytes >= room else {
                self.errorBody.writeImmutableBuffer(part)
                return
            }
            self.errorBody.writeImmutableBuffer(part.getSlice(at: part.readerIndex, length: room)!)
            self.connection?.abandon()
            self.connection = nil
            return self.answeredError()
        }
        guard !self.sawDone, !self.askedWhyEmpty else { return }  // after `[DONE]`: nothing more is the answer's
        if !self.batching, let sink = self.sink {
            self.batching = true
            sink.beginBatch()
        }
        do {
            self.decoder.append(part)
            while let event = try self.decoder.next() {
                guard let payload = event.payload else { continue }  // a comment or bare fields
                if SSE.isDone(payload) {
                    self.sawDone = true
                    break
                }
                guard try self.deliver(payload) else { break }
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
            self.connection?.abandon()
        }
        if !self.done && self.sawDone {
            // `[DONE]` ends the answer, not the HTTP body: a runtime that then closes uncleanly or keeps
            // the body open lost a finished answer (an attack, session 19).
            self.complete()
            self.releaseAfterDone()
        }
    }

    /// After an answer completed at `[DONE]`: the body normally ends at once (often in the same read)
    /// and the connection goes back to the pool; one that has not ended within a second is closed.
    private func releaseAfterDone() {
        guard self.connection != nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.eventLoop.scheduleTask(in: .seconds(1)) {
            let job = loopBound.value
            guard let connection = job.connection else { return }
            job.connection = nil
            connection.abandon()
        }
    }

    /// The read's pieces are delivered: the sink writes the batch; while it wants no more, the
    /// connection stops reading.
    func exchangeDidFinishRead() {
        guard !self.done, let sink = self.sink else { return }
        self.endBatch()
        if !sink.wantsMore {
            self.paused = true
            self.connection?.pause()
        }
    }

    func exchangeDidEnd() {
        self.connection = nil
        guard !self.done else { return }
        guard self.status == 200 else { return self.answeredError() }
        if self.lastReadAt == nil, !self.askedWhyEmpty, let request = self.request {
            return self.askWhyEmpty(request)
        }
        self.complete()
    }

    /// An empty event stream (status 200, no byte): llama-cpp-python 0.3 answers so a prompt over the
    /// model's context, and refuses it with 400 `context_length_exceeded` only when not streaming
    /// (helper-100: the app got a 502, retried, and the car was benched for everyone). The request is
    /// sent once more with `stream: false`, the client's limits kept so the runtime checks the same
    /// sizes: a refusal is then the app's 400 (``answeredError()``); a 200 is the runtime's failure.
    private func askWhyEmpty(_ request: (path: String, body: ByteBuffer)) {
        self.askedWhyEmpty = true
        self.status = 0
        // Kept as the request: a retry on a new connection (a parked one closed) sends it, not the stream
        // (helper-102).
        let unstreamed = (path: request.path, body: Self.unstreamed(request.body))
        self.request = unstreamed
        self.retried = false
        self.engine.runtime.pool(on: self.eventLoop).post(path: unstreamed.path, body: unstreamed.body, to: self)
    }

    /// The runtime answered an error status: the job fails with its status and the start of its error
    /// body (``errorBody``).
    private func answeredError() {
        guard !self.done else { return }
        let detail = (try? JSON.decode(ErrorMessage.self, from: self.errorBody.readableBytesView))?.error
        // The runtime names its own model, which `--model-map` keeps from the app: the advertised
        // name stands in for it (helper-63).
        var said = detail?.message ?? ""
        if let upstream = self.engine.mapping[self.job.model], !upstream.isEmpty, upstream != self.job.model {
            said = said.replacing(upstream, with: self.job.model)
        }
        let message = detail == nil ? nil : said.prefix(200)
        // Busy (429, 503): the gateway tries elsewhere and, when everything is, tells the app to
        // come back (503 server_overloaded), not that the car is broken.
        let busy = APIError.isBusy(status: Int(self.status))
        let status = Int(self.status)
        if APIError.rejectsRequest(status: status) {
            // The request itself was refused (helper-60: a prompt over a small model's context was
            // a 502 and benched the car for everyone): the runtime's status and error go to the app.
            return self.fail(
                EngineError(
                    code: detail?.code.map { String($0.prefix(64)) } ?? "invalid_request",
                    message: message.map(String.init)
                        ?? "The car's inference runtime refused the request (\(status)).",
                    rejectedStatus: status, param: detail?.param.map { String($0.prefix(64)) }))
        }
        return self.fail(
            EngineError(
                code: busy ? APIError.upstreamBusyCode : "upstream_status_\(self.status)",
                message: "the inference runtime answered \(self.status)\(message.map { ": \($0)" } ?? "")"))
    }

    func exchangeDidFail(_ error: any Error, retryable: Bool) {
        self.connection = nil
        guard !self.done else { return }
        if retryable, !self.retried, let request = self.request {
            // A parked connection the runtime had closed: the request never reached it.
            self.retried = true
            return self.engine.runtime.pool(on: self.eventLoop).post(
                path: request.path, body: request.body, newConnection: true, to: self)
        }
        if self.finishReason != nil, !self.askedWhyEmpty {
            // The answer had finished (its finish reason came); only the body's end was lost.
            return self.complete()
        }
        self.fail(EngineError(code: "upstream_unavailable", message: "the inference runtime failed: \(error)"))
    }

    // MARK: To the sink

    /// Reads one chunk (the JSON of an SSE event) and passes its text on; true while the job runs.
    /// The text stays the runtime's JSON string token (``ChunkScanner/ContentMode/token``): the sink
    /// copies it into its own chunk, with no `String` and no second escaping (issue #19).
    private func deliver(_ payload: ByteBuffer) throws(EngineError) -> Bool {
        let result: Result<Bool, EngineError> = payload.withUnsafeReadableBytes { bytes in
            let chunk: ChunkScanner.Chunk
            do {
                chunk = try ChunkScanner.scan(bytes, content: .token, template: &self.template)
            } catch {
                return .failure(EngineError(code: "upstream_bad_stream", message: "a chunk was not JSON"))
            }
            if chunk.isError {
                // A runtime that fails mid-answer says so in an event (llama.cpp, vLLM): its own
                // failure, not a lie about the stream. Its message is not passed on (it may quote input).
                return .failure(EngineError(code: "upstream_error", message: "the inference runtime reported an error"))
            }
            guard chunk.hasChoices || chunk.hasUsage else {
                return .failure(
                    EngineError(code: "upstream_bad_stream", message: "a chunk was not an OpenAI stream chunk"))
            }
            return .success(self.deliver(chunk, from: bytes))
        }
        return try result.get()
    }

    /// Passes one chunk's text on; true while the job runs.
    private func deliver(_ chunk: ChunkScanner.Chunk, from payload: UnsafeRawBufferPointer) -> Bool {
        guard !self.done, let sink = self.sink else { return false }
        if chunk.hasUsage {
            // With its details (cached prompt, reasoning) when the runtime said them.
            self.usage = (chunk.promptTokens, chunk.completionTokens, UsageDetails(chunk: payload))
        }
        if !chunk.otherChoices.isEmpty || (chunk.choice?.index ?? 0) != 0 {
            // The sink carries one answer: a second choice (the runtime honoured `n`) was merged into
            // the first, a silently wrong answer. An error instead; the gateway asks central.
            self.abort(
                EngineError(
                    code: APIError.runtimeMultipleChoicesCode,
                    message: "the inference runtime answered more than one choice; the car path serves one"))
            return false
        }
        if let choice = chunk.choice { self.deliver(choice, from: payload, to: sink) }
        return !self.done
    }

    private func deliver(_ choice: ChunkScanner.Choice, from payload: UnsafeRawBufferPointer, to sink: any TokenSink) {
        guard self.finishReason == nil else { return }  // after the finish: not the answer's
        if let reason = choice.finishReason { self.finishReason = reason }
        if let reasoning = choice.reasoningToken {
            // Thinking before the text (a reasoning model): carried, and it counts as output.
            self.outputArrived()
            sink.emit(reasoningJSON: UnsafeRawBufferPointer(rebasing: payload[reasoning]))
        }
        if let refusal = choice.refusalToken {
            // The model declined: the app reads it as `refusal` (it reached the app as an empty answer).
            self.outputArrived()
            sink.emit(refusalJSON: UnsafeRawBufferPointer(rebasing: payload[refusal]))
        }
        if let token = choice.contentToken, token.count > 2 {  // not absent, null or ""
            self.outputArrived()
            sink.emit(tokenJSON: UnsafeRawBufferPointer(rebasing: payload[token]))
        }
        if choice.hasToolCalls {
            // The model called a function: its pieces go on as the runtime wrote them (read apart, as
            // they are rare). A legacy `function_call`, or pieces of another shape, cannot be relayed:
            // an error, and before the first token the gateway tries elsewhere.
            guard let calls = ToolCall.deltas(inChunk: payload)?[choice.index], !calls.isEmpty else {
                return self.abort(
                    EngineError(
                        code: APIError.runtimeToolCallCode,
                        message: "the inference runtime answered with a function call the car path cannot read"))
            }
            self.calledTools = true
            self.outputArrived()
            sink.emit(toolCalls: calls)
        }
        if choice.finishReason == "function_call" || (choice.finishReason == "tool_calls" && !self.calledTools) {
            // A finish that says the answer is a call, with no call: it would reach the app as an
            // empty answer.
            return self.abort(
                EngineError(
                    code: APIError.runtimeToolCallCode,
                    message: "the inference runtime finished with a tool call it did not send"))
        }
    }

    /// A token of output (text or thinking) arrived: counted, and its time kept.
    private func outputArrived() {
        let now = NIODeadline.now()
        if self.firstAt == nil { self.firstAt = now }
        self.lastAt = now
        self.tokens += 1
    }

    private func complete() {
        guard !self.done else { return }
        // A finished answer has a finish reason, or `[DONE]` after its text. Without either the body
        // was cut short (a lying content-length, a close) or was not an event stream at all (a JSON
        // object, an error with status 200, nothing): it was relayed as a complete, empty or partial
        // answer (an attack, session 19).
        guard !self.askedWhyEmpty, self.finishReason != nil || (self.sawDone && self.tokens > 0) else {
            return self.fail(
                EngineError(
                    code: "upstream_bad_stream",
                    message: self.tokens == 0 && !self.sawDone
                        ? "the inference runtime's answer was not an event stream, or was empty"
                        : "the inference runtime's answer ended without a finish reason or [DONE]"))
        }
        let sink = self.sink
        self.end(cancelled: false)
        let completion = self.usage?.completion ?? self.tokens
        let prompt = self.usage?.prompt ?? Self.estimatedPromptTokens(of: self.job)
        if let first = self.firstAt, let last = self.lastAt {
            let ttft = Double((first - self.sentAt).nanoseconds) / 1e9
            let decode = self.tokens >= 4 ? Double(self.tokens - 1) / (Double((last - first).nanoseconds) / 1e9) : nil
            self.engine.record(
                model: self.job.model, prefillTokensPerSecond: prompt >= 32 ? Double(prompt) / ttft : nil,
                decodeTokensPerSecond: decode)
        }
        sink?.finish(
            reason: self.finishReason ?? "stop", promptTokens: prompt, completionTokens: completion,
            details: self.usage?.details)
    }

    /// The watchdog found a limit passed: the upstream request is closed (the runtime stops) and the job fails.
    private func timedOut(_ message: String) {
        self.abort(EngineError(code: "upstream_timeout", message: message))
    }

    /// Fails the job and closes the runtime connection (the runtime stops).
    private func abort(_ error: EngineError) {
        guard !self.done else { return }
        self.fail(error)
        self.connection?.abandon()
        self.connection = nil
    }

    private func fail(_ error: EngineError) {
        guard !self.done else { return }
        let sink = self.sink
        self.end(cancelled: false)
        sink?.fail(error)
    }

    private func end(cancelled: Bool) {
        guard !self.done else { return }
        self.endBatch()
        self.done = true
        self.timer?.cancel()
        self.timer = nil
        self.request = nil
        self.engine.jobEnded(cancelled: cancelled)
    }

    /// Writes the open batch, if any.
    private func endBatch() {
        guard self.batching else { return }
        self.batching = false
        self.sink?.endBatch()
    }

    func cancel() {
        self.eventLoop.preconditionInEventLoop()
        guard !self.done else { return }
        self.end(cancelled: true)
        self.connection?.abandon()
        self.connection = nil
    }

    func resume() {
        guard self.paused else { return }
        self.paused = false
        self.connection?.resume()
    }
}
