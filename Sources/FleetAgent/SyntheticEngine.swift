public import FleetProtocol
public import NIOCore
import Synchronization

/// A real engine with honest timing and synthetic text.
///
/// Timing follows the car's ``HardwareProfile`` on the wall clock: the first token after
/// `prompt tokens ÷ prefill rate`, then one token every `1 ÷ decode rate`, where the per-stream
/// decode rate falls as more streams share the chip. Text is ``SyntheticText``, a function of
/// (seed, token index). Without `max_tokens` a chat answer has a natural length (64–191 tokens, from
/// the seed) and ends with `stop` (a legacy completion runs to the job's 16); with it, generation
/// runs to the limit and ends with `length` (or `stop` when a stop sequence appears).
public final class SyntheticEngine: InferenceEngine, Sendable {
    /// The profile timing follows.
    public let profile: HardwareProfile
    /// Multiplies every delay (a hidden slowdown: heat, an owner in the cabin). 1 = nominal.
    public let slowdown: Double
    private let active = Atomic<Int>(0)
    private let generated = Atomic<Int>(0)
    private let cancelled = Atomic<Int>(0)

    public init(profile: HardwareProfile, slowdown: Double = 1) {
        self.profile = profile
        self.slowdown = slowdown
    }

    /// The profile's rates: the slowdown is hidden, as heat or an owner in the cabin would be, so
    /// the gateway has to learn it from what it observes.
    public var models: [ModelOffer] {
        [
            ModelOffer(
                id: self.profile.model, decodeTokensPerSecond: self.profile.decodeTokensPerSecond,
                prefillTokensPerSecond: self.profile.prefillTokensPerSecond, contextTokens: self.profile.contextTokens)
        ]
    }

    public var slots: Int { self.profile.slots }

    /// Token-exact: text is a function of (seed, index), so `x-fleet-resume-from: N` continues it.
    public var continuation: ContinuationMode { .exact }
    /// It computes no prefill to keep: no prefix-cache affinity.
    public var promptCache: PromptCacheCapacity? { PromptCacheCapacity(sequences: 0) }

    /// Tokens generated since start, over all jobs.
    public var tokensGenerated: Int { self.generated.load(ordering: .relaxed) }
    /// Jobs running now.
    public var activeJobs: Int { self.active.load(ordering: .relaxed) }
    /// Jobs cancelled since start.
    public var jobsCancelled: Int { self.cancelled.load(ordering: .relaxed) }

    public func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle {
        self.active.add(1, ordering: .relaxed)
        let run = SyntheticJob(engine: self, job: job, eventLoop: eventLoop, sink: sink)
        run.begin()
        return run
    }

    /// OpenAI's (and vLLM's) refusal of a request whose prompt and `max_tokens` together pass the
    /// model's context window: a 400 `context_length_exceeded` the app gets, at once — without it a
    /// 900 KB prompt prefilled for minutes, past the first-token timeout, on three cars in turn
    /// (helper-122). Nil when it fits. The prompt counts as the gateway estimates it (4 bytes a token).
    package static func overContext(_ job: InferenceJob, window: Int) -> EngineError? {
        let prompt = job.prompt.estimatedTokens
        let chat = job.body.messages != nil
        // A legacy completion without `max_tokens` generates 16 (OpenAI's default): counted.
        let completion = job.body.windowOutputTokens
        guard prompt + completion > window else { return nil }
        let field = chat ? "messages" : "prompt"
        let asked =
            completion > 0
            ? "you requested \(prompt + completion) tokens (\(prompt) in the \(field), \(completion) in the completion)"
            : "your \(field) resulted in \(prompt) tokens"
        return EngineError(
            code: APIError.contextLengthExceededCode,
            message: "This model's maximum context length is \(window) tokens. However, \(asked). "
                + "Please reduce the length of the \(field) or completion.",
            rejectedStatus: 400, param: field)
    }

    fileprivate func jobEnded(cancelled: Bool) {
        self.active.subtract(1, ordering: .relaxed)
        if cancelled { self.cancelled.add(1, ordering: .relaxed) }
    }

    fileprivate func tokenGenerated() { self.generated.add(1, ordering: .relaxed) }

    fileprivate func tokenInterval() -> TimeAmount {
        let rate = self.profile.decodeRate(activeStreams: self.active.load(ordering: .relaxed))
        return .nanoseconds(Int64(1e9 / rate * self.slowdown))
    }

    fileprivate func prefillTime(promptTokens: Int) -> TimeAmount {
        .nanoseconds(Int64(Double(promptTokens) / self.profile.prefillTokensPerSecond * 1e9 * self.slowdown))
    }
}

/// One job's generation loop on its event loop.
private final class SyntheticJob: InferenceJobHandle {
    let engine: SyntheticEngine
    let job: InferenceJob
    let eventLoop: any EventLoop
    weak var sink: (any TokenSink)?
    var index: Int
    var produced = 0
    var stops: StopMatcher
    var timer: Scheduled<Void>?
    var paused = false
    var done = false
    let naturalLength: Int
    /// A function call or JSON instead of prose (``SyntheticOutput``), written a piece a token; such a
    /// request is not continued on another car, so it always starts at its first piece.
    let output: SyntheticOutput
    let pieces: [String]

    init(engine: SyntheticEngine, job: InferenceJob, eventLoop: any EventLoop, sink: any TokenSink) {
        self.engine = engine
        self.job = job
        self.eventLoop = eventLoop
        self.sink = sink
        self.index = job.resumeFrom
        self.stops = StopMatcher(job.stop)
        self.output = SyntheticOutput.of(job.body, seed: job.seed)
        self.pieces = self.output.pieces
        // A legacy completion without `max_tokens` runs to the job's 16 (`length`), as OpenAI's does;
        // JSON ends where it is complete.
        self.naturalLength =
            !self.pieces.isEmpty
            ? self.pieces.count
            : job.body.outputLimit == nil && job.body.messages != nil ? 64 + Int(job.seed % 128) : Int.max
    }

    func begin() {
        if let refusal = SyntheticEngine.overContext(self.job, window: self.engine.profile.contextTokens) {
            // As a runtime answers: after the call that started the job, never inside it.
            let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
            self.eventLoop.execute {
                let job = loopBound.value
                guard !job.done else { return }
                let sink = job.sink
                job.end(cancelled: false)
                sink?.fail(refusal)
            }
            return
        }
        self.schedule(after: self.engine.prefillTime(promptTokens: self.job.prompt.estimatedTokens))
    }

    private func schedule(after delay: TimeAmount) {
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.timer = self.eventLoop.scheduleTask(in: delay) { loopBound.value.tick() }
    }

    private func tick() {
        guard !self.done, let sink = self.sink else { return self.end(cancelled: true) }
        if !sink.wantsMore {
            self.paused = true
            return
        }
        if case .toolCall(let name, _) = self.output { return self.call(name, sink: sink) }
        let token =
            self.pieces.isEmpty
            ? SyntheticText.token(seed: self.job.seed, index: self.index)
            : self.pieces[min(self.index, self.pieces.count - 1)]
        self.index += 1
        self.produced += 1
        self.engine.tokenGenerated()
        if case .stop(let emitting) = self.stops.next(token) {
            // The answer ends before the stop sequence; a token with nothing before it was not delivered.
            if emitting.isEmpty { self.produced -= 1 } else { sink.emit(token: emitting) }
            return self.finish(reason: "stop")
        }
        sink.emit(token: token)
        if self.index >= self.naturalLength { return self.finish(reason: "stop") }
        // The limit counts the whole answer: a continuation from token N stops at the same place.
        if self.index >= self.job.maxTokens { return self.finish(reason: "length") }
        self.schedule(after: self.engine.tokenInterval())
    }

    /// One piece of the function call: its name and type with the first, then its arguments; it ends
    /// with `tool_calls`, or `length` at the output limit (OpenAI's cut call).
    private func call(_ name: String, sink: any TokenSink) {
        let first = self.index == 0
        let piece = self.pieces[min(self.index, self.pieces.count - 1)]
        self.index += 1
        self.produced += 1
        self.engine.tokenGenerated()
        sink.emit(toolCalls: [
            ToolCall(
                index: 0, id: nil, type: first ? "function" : nil,
                function: .init(name: first ? name : nil, arguments: piece))
        ])
        if self.index >= self.pieces.count { return self.finish(reason: "tool_calls") }
        if self.index >= self.job.maxTokens { return self.finish(reason: "length") }
        self.schedule(after: self.engine.tokenInterval())
    }

    private func finish(reason: String) {
        let sink = self.sink
        self.end(cancelled: false)
        sink?.finish(reason: reason, promptTokens: self.job.prompt.estimatedTokens, completionTokens: self.produced)
    }

    private func end(cancelled: Bool) {
        guard !self.done else { return }
        self.done = true
        self.timer?.cancel()
        self.engine.jobEnded(cancelled: cancelled)
    }

    func cancel() {
        self.eventLoop.preconditionInEventLoop()
        self.end(cancelled: true)
    }

    func resume() {
        guard self.paused, !self.done else { return }
        self.paused = false
        self.tick()
    }
}
