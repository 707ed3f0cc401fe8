/// Deterministic synthetic text: token `i` of a request is a pure function of (seed, i), so a
/// continuation on another car can be checked token for token (DESIGN.md, Contracts).
public enum SyntheticText {
    /// A vocabulary of common English words; every token is a word followed by a space.
    static let words: [String] = [
        "the", "fleet", "car", "token", "stream", "road", "charge", "battery", "signal", "route",
        "parked", "night", "energy", "compute", "model", "answer", "light", "city", "river", "quiet",
        "fast", "slow", "green", "blue", "north", "south", "east", "west", "bright", "calm",
        "and", "of", "to", "in", "on", "with", "for", "from", "over", "under",
    ]

    /// Token `index` for `seed` (SplitMix64 of both, then a word).
    public static func token(seed: UInt64, index: Int) -> String {
        let z = SplitMix64.mix(seed &+ UInt64(truncatingIfNeeded: index) &* SplitMix64.gamma)
        return words[Int(z % UInt64(words.count))] + " "
    }

    /// A seed derived from the request when the client gives none: FNV-1a of the prompt bytes.
    public static func seed(for prompt: Prompt, requested: Int?) -> UInt64 {
        if let requested { return UInt64(bitPattern: Int64(requested)) }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in prompt.text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}

/// A synthetic hardware profile: how fast a class of car computer runs the fleet's model.
///
/// Assumptions derived in shared FLEET.md from published edge-accelerator figures (Jetson Orin,
/// AGX Thor): decode on edge chips is memory-bandwidth bound. There is no public LLM benchmark
/// of the FSD computers themselves.
public struct HardwareProfile: Sendable, Hashable {
    public var hardware: HardwareClass
    /// The model it runs.
    public var model: String
    /// Decode tokens/s of one stream running alone.
    public var decodeTokensPerSecond: Double
    /// Aggregate decode tokens/s with every slot busy (batching).
    public var aggregateDecodeTokensPerSecond: Double
    /// Prefill tokens/s.
    public var prefillTokensPerSecond: Double
    /// Concurrent streams.
    public var slots: Int
    /// The model's context window: prompt and completion tokens together (the KV cache an edge chip's
    /// memory holds a stream; FLEET.md has no figure, so a common serving setting: 8k for the 3B,
    /// 32k for the 8B). A request over it is refused at once, as a real runtime refuses it.
    public var contextTokens: Int

    /// The profile of a hardware class (FLEET.md table "Reasonable synthetic profiles").
    public static func of(_ hardware: HardwareClass) -> Self {
        switch hardware {
        case .hw3:
            // 3B model; Orin Nano (102 GB/s) runs a 3B at ≈ 43 tok/s, HW3 has ≈ 68 GB/s per chip → 30.
            Self(
                hardware: .hw3, model: "fleet-3b", decodeTokensPerSecond: 30, aggregateDecodeTokensPerSecond: 30,
                prefillTokensPerSecond: 600, slots: 1, contextTokens: 8_192)
        case .hw4:
            // 8B model; ≈ 20 tok/s, 2 streams sharing the bandwidth.
            Self(
                hardware: .hw4, model: "fleet-8b", decodeTokensPerSecond: 20, aggregateDecodeTokensPerSecond: 30,
                prefillTokensPerSecond: 1_200, slots: 2, contextTokens: 32_768)
        case .ai5:
            // 8B model; AGX Thor: ≈ 51 tok/s at batch 1, ≈ 135 tok/s aggregate at batch 8, prefill ≈ 1.8k tok/s.
            Self(
                hardware: .ai5, model: "fleet-8b", decodeTokensPerSecond: 50, aggregateDecodeTokensPerSecond: 135,
                prefillTokensPerSecond: 1_800, slots: 8, contextTokens: 32_768)
        }
    }

    /// Per-stream decode rate with `active` streams sharing the chip: the single-stream rate
    /// until the aggregate ceiling, then an equal share of it.
    public func decodeRate(activeStreams active: Int) -> Double {
        let n = Double(max(1, active))
        return min(self.decodeTokensPerSecond, self.aggregateDecodeTokensPerSecond / n)
    }
}
