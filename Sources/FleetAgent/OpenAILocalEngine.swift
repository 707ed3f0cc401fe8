public import AsyncHTTPClient
import FleetHTTP1Client
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
///   `upstream_status_<n>`, `upstream_busy` for 429 and 503, `upstream_timeout`, `upstream_bad_stream`,
///   `runtime_tool_call`, `runtime_multiple_choices`); upstream text is not copied into them beyond
///   its error message's first 200 characters.
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
        /// How long the runtime may send nothing once it has answered (a stall mid-stream).
        public var readTimeout: TimeAmount = .seconds(90)
        /// How long ``OpenAILocalEngine/connect(_:client:)`` waits for `GET /models`.
        public var discoveryTimeout: TimeAmount = .seconds(5)
        /// The model's chat template, for continuations from text through `/v1/completions`;
        /// nil: the engine cannot continue another engine's answer (the hello says `none`).
        public var chatTemplate: ChatTemplate? = .smolLM2
        /// Keep ``chatTemplate`` only when every model the runtime serves here is a SmolLM (`auto`):
        /// SmolLM2's template, with its default system prompt, continued any other model's answer in
        /// the wrong format (helper-63).
        public var chatTemplateOnlyForSmolLM = false
        /// What the runtime's prompt cache keeps, as configured where it was started (llama-cpp-python:
        /// `--cache true`; `scripts/real-model.sh`); nil: not known (the gateway learns it).
        public var promptCache: PromptCacheCapacity?
        /// The runtime's context window, tokens, told in the hello (`engine.contextTokens`, its `--n_ctx`);
        /// nil: what its `GET /models` says (vLLM's `max_model_len`), or not said.
        public var contextTokens: Int?

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
    /// Reads the runtime for jobs, on each job's own loop.
    let runtime: HTTP1Client
    /// Advertised id → upstream id.
    let mapping: [String: String]
    /// Advertised id → upstream id as a JSON string, for the forwarded body (encoded once, not per job).
    let upstreamModelJSON: [String: String]
    /// The rates by advertised id, and the models with at least one measurement of each rate (the
    /// first replaces the configured guess): one lock a job.
    private let rates: Mutex<Rates>
    private struct Rates {
        var offers: [String: ModelOffer]
        var measuredPrefill: Set<String> = []
        var measuredDecode: Set<String> = []
    }
    private let active = Atomic<Int>(0)
    private let cancelledJobs = Atomic<Int>(0)

    /// The client the agent asks its runtime for its models with (`GET /models`, at start):
    /// async-http-client's shared client without a tracing span, on the same loops. Jobs do not use
    /// it: they go through ``HTTP1Client`` on their own loop (issue #19). Never shut down, like the
    /// shared client.
    public static let runtimeClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(10)))
        configuration.tracing.tracer = nil
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// Asks the runtime for its models (`GET /models`, through `client`) and builds the engine.
    /// - Throws: ``EngineError`` naming the URL when it is not `http://host[:port][/path]` or the
    ///   runtime does not answer, or the model that a mapping names and the runtime does not serve.
    public static func connect(_ configuration: Configuration, client: HTTPClient) async throws -> OpenAILocalEngine {
        let url = configuration.baseURL + "/models"
        let endpoint: HTTP1Endpoint
        do {
            endpoint = try HTTP1Endpoint(baseURL: configuration.baseURL, connectTimeout: .seconds(10))
        } catch {
            throw EngineError(code: "upstream_unavailable", message: "\(error)")
        }
        let served: [String]
        var windows: [String: Int] = [:]
        do {
            let response = try await client.execute(
                HTTPClientRequest(url: url), timeout: configuration.discoveryTimeout)
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status == .ok else {
                throw EngineError(
                    code: "upstream_status_\(response.status.code)",
                    message: "GET \(url) answered \(response.status.code)")
            }
            let models = try JSON.decode(ModelIDs.self, from: body.readableBytesView).data
            served = models.map(\.id)
            windows = Dictionary(models.compactMap { m in m.maxModelLength.map { (m.id, $0) } }) { first, _ in first }
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
        var configuration = configuration
        if configuration.chatTemplateOnlyForSmolLM,
            !mapping.values.allSatisfy({ $0.lowercased().contains("smollm") })
        {
            configuration.chatTemplate = nil
        }
        return OpenAILocalEngine(configuration: configuration, endpoint: endpoint, mapping: mapping, windows: windows)
    }

    /// - Parameter windows: the context windows the runtime's `GET /models` gave, by its model id.
    init(configuration: Configuration, endpoint: HTTP1Endpoint, mapping: [String: String], windows: [String: Int] = [:])
    {
        self.configuration = configuration
        // Parked connections per loop: as many as jobs may run, kept a minute (a runtime that closes
        // idle connections sooner is told by the socket).
        self.runtime = HTTP1Client(
            endpoint: endpoint, pool: .init(maxIdle: max(1, min(configuration.slots, 256)), idleTimeout: .seconds(60)))
        self.mapping = mapping
        self.upstreamModelJSON = mapping.mapValues { JSON.string($0) }
        self.rates = Mutex(
            Rates(
                offers: Dictionary(
                    uniqueKeysWithValues: mapping.keys.map {
                        (
                            $0,
                            ModelOffer(
                                id: $0, decodeTokensPerSecond: configuration.initialDecodeTokensPerSecond,
                                prefillTokensPerSecond: configuration.initialPrefillTokensPerSecond,
                                contextTokens: configuration.contextTokens
                                    ?? mapping[$0].flatMap { windows[$0] }.flatMap(FleetStatus.contextWindow))
                        )
                    })))
    }

    /// The models with the rates measured so far.
    public var models: [ModelOffer] { self.rates.withLock { $0.offers.values.sorted { $0.id < $1.id } } }
    /// Whether `model` is advertised: the mapping's keys, which are ``models``' ids (no lock, no sort).
    public func serves(model: String) -> Bool { self.mapping[model] != nil }
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
        self.rates.withLock { rates in
            guard var offer = rates.offers[model] else { return }
            if let p = prefillTokensPerSecond, p.isFinite, p > 0 {
                let first = rates.measuredPrefill.insert(model).inserted
                offer.prefillTokensPerSecond = first ? p : 0.5 * offer.prefillTokensPerSecond + 0.5 * p
            }
            if let d = decodeTokensPerSecond, d.isFinite, d > 0 {
                let first = rates.measuredDecode.insert(model).inserted
                offer.decodeTokensPerSecond = first ? d : 0.5 * offer.decodeTokensPerSecond + 0.5 * d
            }
            rates.offers[model] = offer
        }
    }
}

/// What the engine reads of a runtime's answers: only the fields it needs, so runtimes that
/// omit OpenAI's optional ones (`created`, `owned_by`, an error's `type`) still work.
private struct ModelIDs: Decodable {
    struct Model: Decodable {
        var id: String
        /// vLLM's context window (`max_model_len`); other runtimes do not say theirs. Read leniently:
        /// a value of another type is not said.
        var maxModelLength: Int?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            self.id = try c.decode(String.self, forKey: .id)
            self.maxModelLength = try? c.decodeIfPresent(Int.self, forKey: .maxModelLength)
        }

        private enum Keys: String, CodingKey {
            case id
            case maxModelLength = "max_model_len"
        }
    }
    var data: [Model]
}

struct ErrorMessage: Decodable {
    /// Each field read on its own: runtimes differ (llama.cpp and vLLM send `code` as the HTTP
    /// status number), and one field of another type must not lose the message.
    struct Detail: Decodable {
        var message: String
        /// `code` when it is a string (OpenAI's `context_length_exceeded`); nil for a number.
        var code: String?
        var param: String?

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            self.message = try c.decode(String.self, forKey: .message)
            self.code = try? c.decodeIfPresent(String.self, forKey: .code)
            self.param = try? c.decodeIfPresent(String.self, forKey: .param)
        }

        private enum Keys: String, CodingKey { case message, code, param }
    }
    var error: Detail
}
