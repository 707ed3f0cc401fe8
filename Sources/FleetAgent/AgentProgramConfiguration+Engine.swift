import AsyncHTTPClient
import FleetConfiguration
import FleetProtocol
public import Logging
import NIOCore

extension AgentProgramConfiguration.Engine {
    /// The engine chosen: the synthetic one, or the bridge to a local runtime (asked for its models first).
    ///
    /// The runtime may still be loading its model: it is asked again with backoff (1 s … 30 s), with a
    /// warning each time, rather than exiting; the tunnel is dialled once it answers. Cancellation
    /// (shutdown) ends the wait.
    public func makeEngine(logger: Logger) async throws -> any InferenceEngine {
        let engine = try await self.makeHonestEngine(logger: logger)
        guard self.cheatEvery > 0 else { return engine }
        logger.warning("engine.cheatEvery is set: this car returns wrong text on purpose (testing audits)")
        return CheatingEngine(inner: engine, every: self.cheatEvery)
    }

    private func makeHonestEngine(logger: Logger) async throws -> any InferenceEngine {
        guard self.kind == "openai-local" else { return self.makeSyntheticEngine() }
        let profile = HardwareProfile.of(self.hardware)
        var configuration = OpenAILocalEngine.Configuration(
            baseURL: self.upstream, models: self.modelMap, slots: self.slots ?? 1,
            initialDecodeTokensPerSecond: self.decodeTokensPerSecond ?? profile.decodeTokensPerSecond,
            initialPrefillTokensPerSecond: self.prefillTokensPerSecond ?? profile.prefillTokensPerSecond)
        switch self.chatTemplate {
        case "smollm2": configuration.chatTemplate = .smolLM2
        case "chatml": configuration.chatTemplate = .chatML
        case "none": configuration.chatTemplate = nil
        default: configuration.chatTemplateOnlyForSmolLM = true  // auto
        }
        configuration.contextTokens = self.runtimeContextTokens
        configuration.promptCache = self.cacheSequences.map {
            PromptCacheCapacity(sequences: $0, tokens: self.cacheTokens)
        }
        let backoff = Backoff(initial: .seconds(1), maximum: .seconds(30))
        var attempt = 0
        while true {
            do {
                return try await OpenAILocalEngine.connect(configuration, client: OpenAILocalEngine.runtimeClient)
            } catch let error as EngineError {
                let delay = backoff.delay(attempt: attempt, random: Double.random(in: 0..<1))
                logger.warning(
                    "Runtime not answering yet; retrying",
                    metadata: [
                        "fleet.upstream": "\(self.upstream)", "error.message": "\(error.message)",
                        "fleet.retry.seconds": "\(Double(delay.nanoseconds) / 1e9)",
                    ])
                attempt += 1
                try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
            }
        }
    }

    /// The window an openai-local car says (nil: the runtime's `max_model_len`, if it lists one):
    /// `engine.contextTokens`, else `engine.cacheTokens` (the runtime's `--n_ctx`) when a hello may say it
    /// (at most 2²⁴; the key takes more, and a hello over it would be refused).
    public var runtimeContextTokens: Int? {
        self.contextTokens ?? self.cacheTokens.flatMap(FleetStatus.contextWindow)
    }

    /// The synthetic engine with this hardware profile and its overrides.
    public func makeSyntheticEngine() -> SyntheticEngine {
        var profile = HardwareProfile.of(self.hardware)
        if let slots = self.slots { profile.slots = slots }
        if let decode = self.decodeTokensPerSecond {
            profile.decodeTokensPerSecond = decode
            profile.aggregateDecodeTokensPerSecond = decode * Double(profile.slots)
        }
        if let prefill = self.prefillTokensPerSecond { profile.prefillTokensPerSecond = prefill }
        if let window = self.contextTokens { profile.contextTokens = window }
        return SyntheticEngine(profile: profile, slowdown: self.slowdown)
    }
}
