import AsyncHTTPClient
import FleetConfiguration
import FleetProtocol

extension AgentProgramConfiguration.Engine {
    /// The engine chosen: the synthetic one, or the bridge to a local runtime (asked for its models first).
    /// - Throws: ``ConfigurationError`` naming `engine.upstream` when the runtime does not answer.
    public func makeEngine() async throws -> any InferenceEngine {
        guard self.kind == "openai-local" else { return self.makeSyntheticEngine() }
        let profile = HardwareProfile.of(self.hardware)
        let configuration = OpenAILocalEngine.Configuration(
            baseURL: self.upstream, models: self.modelMap, slots: self.slots ?? 1,
            initialDecodeTokensPerSecond: self.decodeTokensPerSecond ?? profile.decodeTokensPerSecond,
            initialPrefillTokensPerSecond: self.prefillTokensPerSecond ?? profile.prefillTokensPerSecond)
        do {
            return try await OpenAILocalEngine.connect(configuration, client: .shared)
        } catch let error as EngineError {
            throw ConfigurationError(.invalidValue, key: "engine.upstream", value: self.upstream, error.message)
        }
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
        return SyntheticEngine(profile: profile, slowdown: self.slowdown)
    }
}
