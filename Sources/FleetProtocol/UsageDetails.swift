public import NIOCore

/// The parts of a chat usage that the Responses API reports on their own: prompt tokens served from
/// the upstream's cache (`prompt_tokens_details.cached_tokens`) and output tokens spent reasoning
/// (`completion_tokens_details.reasoning_tokens`). Read once a request, from the usage chunk of the
/// upstream that answered; 0 for what it does not say.
public struct UsageDetails: Sendable, Hashable {
    /// `prompt_tokens_details.cached_tokens`.
    public var cachedTokens: Int
    /// `completion_tokens_details.reasoning_tokens`.
    public var reasoningTokens: Int

    /// Details as given.
    public init(cachedTokens: Int = 0, reasoningTokens: Int = 0) {
        self.cachedTokens = cachedTokens
        self.reasoningTokens = reasoningTokens
    }

    /// The details in a chunk's `usage`; nil when the payload is not JSON with a `usage` object, or
    /// names neither detail object.
    /// Negative or absurd counts (a lying upstream) are not the client's: each is kept as the usage's
    /// own counts are (``ChunkScanner/tokenCount(_:)``).
    /// - Parameter payload: one chunk's JSON (an SSE event's `data`).
    public init?(chunk payload: ByteBuffer) {
        guard let details = payload.withUnsafeReadableBytes({ Self(chunk: $0) }) else { return nil }
        self = details
    }

    /// ``init(chunk:)-(ByteBuffer)`` of a payload in memory the caller holds.
    public init?(chunk payload: UnsafeRawBufferPointer) {
        // Most runtimes say no details: no decoder for their usage chunk (one `memmem`).
        let needle: StaticString = "tokens_details"
        let named = needle.withUTF8Buffer { SSE.search($0, in: payload) != nil }
        guard named, let chunk = try? JSON.decode(Chunk.self, from: payload), let usage = chunk.usage else {
            return nil
        }
        self.init(usage)
    }

    /// The counts a usage object gave, each kept in range as the usage's own counts are; 0 for one
    /// it did not give.
    init(_ counts: Counts) {
        self.cachedTokens = ChunkScanner.tokenCount(counts.cachedTokens) ?? 0
        self.reasoningTokens = ChunkScanner.tokenCount(counts.reasoningTokens) ?? 0
    }

    /// Each level and count read leniently: one member of an unexpected type or size (`1e30`, a
    /// string) loses that count, not the other.
    private struct Chunk: Decodable {
        var usage: Counts?
        enum CodingKeys: String, CodingKey { case usage }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.usage = try? c.decodeIfPresent(Counts.self, forKey: .usage)
        }
    }

    /// A usage object's details (``Usage`` reads them with it, the chunk reader alone).
    struct Counts: Decodable {
        var cachedTokens: Int?
        var reasoningTokens: Int?
        enum CodingKeys: String, CodingKey {
            case promptTokensDetails = "prompt_tokens_details"
            case completionTokensDetails = "completion_tokens_details"
        }
        enum DetailKeys: String, CodingKey {
            case cachedTokens = "cached_tokens"
            case reasoningTokens = "reasoning_tokens"
        }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let prompt = try? c.nestedContainer(keyedBy: DetailKeys.self, forKey: .promptTokensDetails)
            let completion = try? c.nestedContainer(keyedBy: DetailKeys.self, forKey: .completionTokensDetails)
            self.cachedTokens = (try? prompt?.decodeIfPresent(Int.self, forKey: .cachedTokens)) ?? nil
            self.reasoningTokens = (try? completion?.decodeIfPresent(Int.self, forKey: .reasoningTokens)) ?? nil
        }
    }
}
