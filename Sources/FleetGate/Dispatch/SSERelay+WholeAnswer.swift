package import FleetProtocol
package import NIOCore

/// The `stream: false` answer the relay joins from what it delivered: text, thinking, refusal and
/// function calls of each choice, the finish reasons and the usage.
extension SSERelay {

    /// Keeps a delivered chunk's tool-call pieces (``ToolCall/deltas(inChunk:)-(ByteBuffer)``, read
    /// apart: they are rare), counted in the aggregate's bound by their bytes. A chunk whose pieces
    /// cannot be read never gets here: ``classify`` calls it malformed for a `stream: false` answer.
    mutating func keepToolCalls(of payload: ByteBuffer) {
        guard let deltas = ToolCall.deltas(inChunk: payload) else { return }
        for (index, pieces) in deltas {
            self.toolCalls[index, default: ToolCallAccumulator()].append(pieces)
        }
        self.aggregateBytes += payload.readableBytes
    }

    /// The ids of calls the runtime gave none: `call_` and the request's id.
    var missingCallIDPrefix: String { ToolCall.missingIDPrefix(answerID: self.configuration.fallbackID) }

    /// Whether a choice of the chunk has tool-call pieces.
    static func hasToolCalls(_ chunk: ChunkScanner.Chunk) -> Bool {
        chunk.choice?.hasToolCalls == true || chunk.otherChoices.contains { $0.hasToolCalls }
    }

    /// The `stream: false` answer.
    package func response(model: String) -> CompletionResponse {
        let chat = self.configuration.chat
        let indices = [0] + Set(self.otherText.keys).union(self.toolCalls.keys).subtracting([0]).sorted()
        let choices = indices.map { index in
            let text = index == 0 ? self.deliveredText : (self.otherText[index]?.text ?? "")
            let reasoning = index == 0 && !self.reasoning.isEmpty ? self.reasoning.text : nil
            let refusal = index == 0 && !self.refusal.isEmpty ? self.refusal.text : nil
            return CompletionResponse.Choice(
                index: index,
                message: chat
                    ? ChatMessage(
                        role: "assistant", content: text, reasoningContent: reasoning, refusal: refusal,
                        toolCalls: self.toolCalls[index]?.toolCalls(missingIDPrefix: self.missingCallIDPrefix))
                    : nil,
                text: chat ? nil : text, finishReason: self.finishReasons[index] ?? "stop")
        }
        let identity = self.identity
        return CompletionResponse(
            id: identity.map { Self.decodeString($0.id) } ?? self.configuration.fallbackID,
            object: chat ? "chat.completion" : "text_completion", created: identity?.created ?? 0,
            model: identity.map { Self.decodeString($0.model) } ?? model, choices: choices,
            usage: self.usageWithDetails)
    }

    /// Usage as the client is told it: the original prompt, and every token delivered (as the
    /// upstreams counted them when they all said, else as counted here). The prompt is the first
    /// reported count of the upstreams the client heard, less the delivered tokens a continuation's
    /// prompt repeats; when none reported one (the first upstream lost before its usage chunk, and
    /// no other), the gateway's estimate — not 0.
    ///
    /// Reported counts are bounded by what the request allows (``implausibleUsage``), and a car's
    /// `completion_tokens` by the bytes it sent (``AttemptState/untrusted``): a car is not trusted to
    /// bill the app (helper-72: a car's `completion_tokens: 1000000` reached the client).
    package var usage: Usage {
        let reported = self.reportedUsage()
        return Usage(
            promptTokens: min(reported.promptTokens, self.configuration.promptTokenBound),
            completionTokens: min(reported.completionTokens, self.completionTokenBound))
    }

    /// ``usage`` before the request's bounds; `asReported`: before a car's own bound too (the log's).
    private func reportedUsage(asReported: Bool = false) -> Usage {
        var prompt: Int?
        var completion = 0
        var allReported = true
        for attempt in self.segments {
            guard let state = self.attempts[attempt] else {
                allReported = false
                continue
            }
            if prompt == nil, let reported = state.promptTokens { prompt = max(0, reported - state.repeatedTokens) }
            if let reported = asReported ? state.completionTokens : state.boundedCompletionTokens {
                completion += reported
            } else {
                allReported = false
            }
        }
        return Usage(
            promptTokens: prompt ?? self.configuration.estimatedPromptTokens,
            completionTokens: allReported ? completion : self.deliveredTokens)
    }

    /// Room for a chat template and a runtime's default system prompt in ``Configuration/promptTokenBound``:
    /// SmolLM2's template adds about 30 tokens to a one-word prompt whose body is 60 bytes.
    package static let promptTemplateAllowance = 512

    /// The most `completion_tokens` an honest upstream reports: `max_tokens` for each choice, else
    /// the text the relay may hold (a token is at least a byte of it).
    var completionTokenBound: Int {
        self.configuration.maxOutputTokens.map { $0 * self.configuration.choices }
            ?? self.configuration.maxAggregateBytes
    }

    /// The upstreams' usage when one upstream's own counts passed a bound (the sum is clamped in
    /// ``usage`` either way), for the log; nil when each was plausible. Per upstream, not the sum: an
    /// exact continuation regenerates the tokens the client already has and counts them again, which
    /// is honest.
    package var implausibleUsage: Usage? {
        let lying = self.segments.contains { attempt in
            self.attempts.read(attempt) { state in
                (state.promptTokens ?? 0) - state.repeatedTokens > self.configuration.promptTokenBound
                    || (state.completionTokens ?? 0) > self.completionTokenBound
                    || (state.completionTokens ?? 0) > (state.boundedCompletionTokens ?? 0)
            } ?? false
        }
        return lying ? self.reportedUsage(asReported: true) : nil
    }

    /// The cached and reasoning tokens of the usage chunk, when one upstream answered and said them
    /// (the Responses API reports them; read once, at the end).
    var usageDetails: UsageDetails? {
        guard self.segments.count == 1, let item = self.attempts.read(self.segments[0], { $0.usageItem }) ?? nil
        else { return nil }
        guard var details = UsageDetails(chunk: item.payload) else { return nil }
        // Parts of the bounded counts (``usage``).
        let usage = self.usage
        details.cachedTokens = min(details.cachedTokens, usage.promptTokens)
        details.reasoningTokens = min(details.reasoningTokens, usage.completionTokens)
        return details
    }

    /// ``usage`` with ``usageDetails``: a whole answer's, when one upstream answered and said them.
    var usageWithDetails: Usage {
        var usage = self.usage
        usage.details = self.usageDetails
        return usage
    }

    /// The `stream: false` answer as the client's API writes it: ``response(model:)``, or the
    /// Responses API's `response` object.
    package func responseBody(model: String) -> ByteBuffer {
        if let renderer = self.renderer {
            return JSON.buffer(
                renderer.response(
                    text: self.deliveredText, refusal: self.refusal.text, reasoning: self.reasoning.text,
                    usage: self.usage,
                    details: self.usageDetails,
                    toolCalls: self.toolCalls[0]?.toolCalls(missingIDPrefix: self.missingCallIDPrefix) ?? [],
                    finishReason: self.finishReasons[0]))
        }
        return JSON.buffer(self.response(model: model))
    }
}
