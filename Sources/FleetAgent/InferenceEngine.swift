public import FleetProtocol
public import NIOCore

/// A job for an engine: what to generate and how much.
public struct InferenceJob: Sendable {
    /// The model requested.
    public var model: String
    /// The prompt; its description shows only sizes.
    public var prompt: Prompt
    /// Output limit in tokens.
    public var maxTokens: Int
    /// Stop sequences.
    public var stop: [String]
    /// The seed for deterministic synthetic text.
    public var seed: UInt64
    /// Start at this token index (a continuation after failover).
    public var resumeFrom: Int
    /// The original request body, for engines that forward it.
    public var body: CompletionRequest
    /// A continuation from text: the body's last message is the delivered answer to continue
    /// (`x-fleet-continuation: prefix`).
    public var continuesText = false
    /// The request's bytes as the client sent them, for engines that forward every field
    /// (`repeat_penalty`, `tools`, …), not only the ones ``body`` decodes.
    public var rawBody: ByteBuffer?

    public init(
        model: String, prompt: Prompt, maxTokens: Int, stop: [String], seed: UInt64, resumeFrom: Int = 0,
        body: CompletionRequest
    ) {
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.stop = stop
        self.seed = seed
        self.resumeFrom = resumeFrom
        self.body = body
    }
}

/// Where an engine delivers a job's output, on the job's event loop.
public protocol TokenSink: AnyObject {
    /// False while the consumer cannot take more; the engine pauses until ``InferenceJobHandle/resume()``.
    var wantsMore: Bool { get }
    /// One token of text.
    func emit(token: String)
    /// One token of text as a JSON string token (quotes included) that ``ChunkScanner`` validated,
    /// valid only during the call: a sink that writes JSON copies it rather than decoding it into a
    /// `String` and escaping it again (issue #19). Not called for an empty text (`""`).
    func emit(tokenJSON: UnsafeRawBufferPointer)
    /// One token of a reasoning model's thinking (`reasoning_content`), as a JSON string token
    /// like ``emit(tokenJSON:)``'s, before the answer's text: the app shows it as the model's
    /// reasoning, and it keeps the job alive while no text comes. Not called for `""`.
    func emit(reasoningJSON: UnsafeRawBufferPointer)
    /// One piece of the model's refusal (`refusal`: it declined), as a JSON string token like
    /// ``emit(tokenJSON:)``'s: the app reads it as OpenAI's `refusal`, not as text. Not called for `""`.
    func emit(refusalJSON: UnsafeRawBufferPointer)
    /// Pieces of the function calls the model chose (`delta.tool_calls`, each with its `index`), after
    /// any text of the same chunk; the answer then finishes with `tool_calls`. Chat only.
    func emit(toolCalls: [ToolCall])
    /// The job ended normally (`stop`, `length`, `tool_calls`); `details`: the cached prompt tokens
    /// and reasoning tokens, when the engine knows them.
    func finish(reason: String, promptTokens: Int, completionTokens: Int, details: UsageDetails?)
    /// The job failed.
    func fail(_ error: EngineError)
    /// Tokens that arrive together follow, up to ``endBatch()``: the sink may hold their writes and
    /// make them one (issue #19: one read of the runtime's socket often brings every chunk of a stream).
    func beginBatch()
    /// The batch ends: what it held is written now.
    func endBatch()
}

extension TokenSink {
    /// The job ended normally, with no usage details.
    public func finish(reason: String, promptTokens: Int, completionTokens: Int) {
        self.finish(reason: reason, promptTokens: promptTokens, completionTokens: completionTokens, details: nil)
    }
    public func emit(tokenJSON: UnsafeRawBufferPointer) {
        self.emit(token: ChunkScanner.string(tokenJSON, range: 0..<tokenJSON.count))
    }
    public func beginBatch() {}
    public func endBatch() {}
}

/// A running job.
public protocol InferenceJobHandle: AnyObject {
    /// Stops generating; no more sink calls follow.
    func cancel()
    /// The sink wants more again after reporting `wantsMore == false`.
    func resume()
}

/// Runs inference. Engines plug in behind this protocol without touching tunnel code.
public protocol InferenceEngine: Sendable {
    /// The models served, with their rates (reported in the hello).
    var models: [ModelOffer] { get }
    /// Whether `model` is one of ``models`` (asked once per job: an engine whose ``models`` takes a
    /// lock or sorts answers this without, issue #19).
    func serves(model: String) -> Bool
    /// How many jobs may run at once.
    var slots: Int { get }
    /// Whether ``models`` reports rates measured from jobs (sent to the gateway after each job).
    var measuresRates: Bool { get }
    /// What the engine can do with a continuation of another engine's answer (told in the hello).
    var continuation: ContinuationMode { get }
    /// What its prompt cache keeps, told in the hello for prefix-cache affinity (nil: not known).
    var promptCache: PromptCacheCapacity? { get }
    /// Starts a job whose output goes to `sink`, on `eventLoop`.
    func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle
}

extension InferenceEngine {
    public func serves(model: String) -> Bool { self.models.contains { $0.id == model } }
    public var measuresRates: Bool { false }
    public var continuation: ContinuationMode { .none }
    public var promptCache: PromptCacheCapacity? { nil }
}

/// An engine failure.
public struct EngineError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public var code: String
    /// Set when the runtime rejected the request itself (``APIError/rejectsRequest(status:)``: a prompt
    /// over its context, a parameter it refuses): the status, passed to the gateway (docs/protocol.md),
    /// which answers the client with it after one other upstream, without holding it against the car.
    public var rejectedStatus: Int?
    /// The parameter a rejection names, if any.
    public var param: String?
    public init(code: String, message: String, rejectedStatus: Int? = nil, param: String? = nil) {
        self.code = code
        self.message = message
        self.rejectedStatus = rejectedStatus
        self.param = param
    }
    public var description: String { "\(self.code): \"\(self.message)\"" }
}
