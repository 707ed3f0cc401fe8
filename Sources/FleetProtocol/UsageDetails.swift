public import NIOCore

/// The parts of a chat usage that the Responses API reports on their own: prompt tokens served from
/// the upstream's cache (`prompt_tokens_details.cached_tokens`) and output tokens spent reasoning
/// (`completion_tokens_details.reasoning_tokens`). Read once a request, from the usage chunk of the
/// upstream that answered; 0 for what it does not say.
public struct UsageDetails: Sendable, Hashable {
    public var cachedTokens: Int
    public var reasoningTokens: Int

    public init(cachedTokens: Int = 0, reasoningTokens: Int = 0) {
        self.cachedTokens = cachedTokens
        self.reasoningTokens = reasoningTokens
    }

    /// The details in a chunk's `usage`; nil when the payload is not JSON with a `usage` object.
    /// Negative or absurd counts (a lying upstream) are not the client's: each is kept in 0…`limit`.
    public init?(chunk payload: ByteBuffer, limit: Int) {
        guard let chunk = try? JSON.decode(Chunk.self, from: payload.readableBytesView), let usage = chunk.usage
        else { return nil }
        func bounded(_ value: Int?) -> Int { min(max(value ?? 0, 0), limit) }
        self.cachedTokens = bounded(usage.promptTokensDetails?.cachedTokens)
        self.reasoningTokens = bounded(usage.completionTokensDetails?.reasoningTokens)
    }

    private struct Chunk: Decodable {
        var usage: Counts?
    }

    private struct Counts: Decodable {
        struct Prompt: Decodable {
            var cachedTokens: Int?
            enum CodingKeys: String, CodingKey { case cachedTokens = "cached_tokens" }
        }
        struct Completion: Decodable {
            var reasoningTokens: Int?
            enum CodingKeys: String, CodingKey { case reasoningTokens = "reasoning_tokens" }
        }
        var promptTokensDetails: Prompt?
        var completionTokensDetails: Completion?
        enum CodingKeys: String, CodingKey {
            case promptTokensDetails = "prompt_tokens_details"
            case completionTokensDetails = "completion_tokens_details"
        }
    }
}
