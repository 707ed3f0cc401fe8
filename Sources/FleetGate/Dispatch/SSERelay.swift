package import FleetProtocol
package import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Owns what the client sees of one completion, whichever upstreams produce it.
///
/// Responsibilities:
/// 1. split each attempt's bytes into SSE events (bounded in size) and classify each by parsing
///    its `data:` payload with ``ChunkScanner`` — any JSON spacing; `event:`, `id:`, `retry:` and
///    comment lines never reach the client;
/// 2. hold an attempt's role chunk until its first token, so a retry or hedge is invisible;
/// 3. re-emit only what the OpenAI format allows: `data:` with a chunk of the right shape (the
///    upstream's own bytes when they already carry the stream's identity, else a chunk written
///    anew), `[DONE]` once and last, the SSE error event of DESIGN.md's contract;
/// 4. keep one `id`/`object`/`created`/`model` from the first delivered chunk to `[DONE]`, across
///    failover continuations;
/// 5. count delivered tokens and keep the delivered text (of choice 0) for continuations, as its
///    pieces' JSON string tokens (``TokenText``: decoded only when read); strip usage unless the
///    client asked, and report usage as the original prompt plus every token delivered;
/// 6. bound what an upstream can make it hold: event size, events per attempt, output tokens
///    (`max_tokens`) and, for `stream: false`, the aggregate's bytes.
///
/// The client may instead see the Responses API (``Configuration/responses``): then a
/// ``ResponsesRenderer`` writes what the relay delivers, and everything else above is unchanged.
///
/// It does no I/O and decides nothing about attempts: ``DispatchStateMachine`` does, from the
/// ``Item``s this type classifies.
package struct SSERelay: Sendable {
    /// Bounds and the client's wishes.
    package struct Configuration: Sendable, Hashable {
        /// `stream: true`.
        package var streaming: Bool
        /// `stream_options.include_usage`.
        package var includeUsage: Bool
        /// Chat (`chat.completion.chunk`) or legacy completions (`text_completion`).
        package var chat: Bool
        /// The client's `max_tokens`, if any.
        package var maxOutputTokens: Int?
        /// The largest SSE event accepted from an upstream.
        package var maxEventBytes: Int
        /// Events accepted from one attempt.
        package var maxEventsPerAttempt: Int
        /// Bytes of text the relay holds for an answer — a `stream: false` answer's whole text, a
        /// stream's for its continuations —, counted as JSON escapes the text
        /// (``TokenText/escapedCount``): about what the answer's JSON writes, never fewer than the
        /// text's UTF-8 bytes. A stream that reaches it ends as its output limit ends it (`length`):
        /// without it, an upstream's large tokens made the relay hold up to its event bound times
        /// the event size (200,000 × 64 KiB) of a stream with no `max_tokens`.
        package var maxAggregateBytes: Int
        /// The stream id used when an upstream sends none.
        package var fallbackID: String
        /// The model and creation time (Unix seconds) used when an upstream's first chunk has none:
        /// the request's model and its start, as `stream: false` answers fill them in.
        package var fallbackModel: String
        package var fallbackCreated: Int
        /// For `/v1/responses`: the `response` in progress; the client then sees Responses events
        /// and objects (``ResponsesRenderer``) instead of chat chunks.
        package var responses: ResponseObject?
        /// The choices asked for (`n`): the answer is finished when each has its finish reason.
        package var choices: Int
        /// The gateway's estimate of the prompt's tokens (its bytes ÷ 4): the usage's `prompt_tokens`
        /// when no upstream the client heard reported its own.
        package var estimatedPromptTokens: Int
        /// The most `prompt_tokens` an honest upstream reports for this request: its body's bytes plus
        /// room for a chat template and a runtime's default system prompt (a token is at least a byte
        /// of what it encodes). See ``SSERelay/implausibleUsage``.
        package var promptTokenBound: Int

        package init(
            streaming: Bool, includeUsage: Bool, chat: Bool, maxOutputTokens: Int?, maxEventBytes: Int = 64 * 1024,
            maxEventsPerAttempt: Int = 200_000, maxAggregateBytes: Int = 4 << 20, fallbackID: String,
            fallbackModel: String = "", fallbackCreated: Int = 0, responses: ResponseObject? = nil, choices: Int = 1,
            estimatedPromptTokens: Int = 0, promptTokenBound: Int = .max
        ) {
            self.promptTokenBound = promptTokenBound
            self.choices = max(1, choices)
            self.estimatedPromptTokens = estimatedPromptTokens
            self.streaming = streaming
            self.includeUsage = includeUsage
            self.chat = chat
            self.maxOutputTokens = maxOutputTokens
            self.maxEventBytes = maxEventBytes
            self.maxEventsPerAttempt = maxEventsPerAttempt
            self.maxAggregateBytes = maxAggregateBytes
            self.fallbackID = fallbackID
            self.fallbackModel = fallbackModel
            self.fallbackCreated = fallbackCreated
            self.responses = responses
        }
    }

    /// What an upstream event is, for the state machine.
    package enum Kind: Sendable, Hashable {
        /// A chunk without output (the role chunk, an empty delta): held before the first token.
        case preamble
        /// A chunk with output: text, a tool call or a finish reason.
        case output
        /// A usage-only chunk: recorded, never forwarded as is.
        case usage
        /// `data: [DONE]`: the attempt's end.
        case done
        /// An `{"error":…}` payload: the upstream gave up.
        case upstreamError
        /// Not a chunk: bad JSON or UTF-8, the wrong shape, too large, or past a bound.
        case malformed(label: String)
        /// Past the client's `max_tokens` or the aggregate bound: the answer is complete.
        case overLimit
    }

    /// One classified upstream event.
    package struct Item: Sendable {
        package var kind: Kind
        /// The `data:` payload (one JSON text).
        package var payload: ByteBuffer
        package var chunk: ChunkScanner.Chunk?
    }

    /// The stream's identity, fixed by the first delivered chunk.
    struct Identity: Sendable {
        var id: ByteBuffer  // the JSON string token, quotes included
        var object: ByteBuffer
        var created: Int
        var model: ByteBuffer

        /// Whether the string token at `range` of `bytes` is the id: one `memcmp`, with no slice and no
        /// copy (a slice, `==` and a copy of the identity were ~500 instructions a chunk).
        func isID(_ range: Range<Int>, in bytes: UnsafeRawBufferPointer) -> Bool {
            self.id.withUnsafeReadableBytes { id in
                id.count == range.count && range.upperBound <= bytes.count
                    && memcmp(bytes.baseAddress! + range.lowerBound, id.baseAddress!, range.count) == 0
            }
        }
    }

    /// Per attempt: its parser, its held preamble and what it reported.
    struct AttemptState: Sendable {
        var decoder: SSE.Decoder
        var held: [Item] = []
        var events = 0
        var ended = false
        var promptTokens: Int?
        /// Tokens of the answer delivered before this attempt that its prompt repeats (a prefix
        /// continuation's): not the app's prompt, so not its `prompt_tokens`.
        var repeatedTokens = 0
        var completionTokens: Int?
        /// The attempt's usage chunk (`choices: []`): the client's, as it is, when this attempt alone
        /// answered (its usage details, `system_fingerprint`, `service_tier`).
        var usageItem: Item?
        /// The attempt's last token chunk, so the next alike is not scanned again.
        var template = ChunkTemplate()
        /// The decoder refused an event too large: the attempt ends after the events before it.
        var tooLarge = false
        /// A car's attempt: its `completion_tokens` are bounded by ``receivedBytes`` as well (an honest
        /// runtime sends every token it counts, in an event of a hundred bytes or more; helper-76: without
        /// `max_tokens` the only bound was the relay's 4 MiB). Central's and another replica's are not:
        /// a model whose reasoning is hidden counts tokens it never sends.
        var untrusted = false
        /// Bytes the attempt sent.
        var receivedBytes = 0

        /// The attempt's reported `completion_tokens` within its own bound (none but the request's
        /// unless ``untrusted``).
        var boundedCompletionTokens: Int? {
            guard let reported = self.completionTokens else { return nil }
            return self.untrusted ? min(reported, self.receivedBytes) : reported
        }
    }

    package let configuration: Configuration
    var attempts = AttemptMap<AttemptState>()
    var identity: Identity?
    /// Attempts the client heard, in order.
    private(set) var segments: [Int] = []
    /// Tokens delivered to the client.
    package internal(set) var deliveredTokens = 0
    /// The delivered text of choice 0, for continuations and `stream: false`: kept as its pieces'
    /// string tokens, decoded by ``deliveredText``.
    var delivered = TokenText()
    /// Choice 0's thinking (`reasoning_content`), for `stream: false` and the Responses API (for which
    /// only the thinking before the text: its reasoning item comes before the message).
    private(set) var reasoning = TokenText()
    /// Choice 0's refusal (`delta.refusal`: the model declined), for `stream: false` and the Responses
    /// API; a streamed chat client gets it in the chunk, as it came.
    private(set) var refusal = TokenText()
    /// Text of further choices (`n > 1`), for `stream: false`.
    private(set) var otherText: [Int: TokenText] = [:]
    /// The function calls of each choice, joined from their pieces, for `stream: false` (a streamed
    /// client gets the pieces in the chunks, as they came).
    var toolCalls: [Int: ToolCallAccumulator] = [:]
    var aggregateBytes = 0
    /// The last finish reason delivered, per choice.
    private(set) var finishReasons: [Int: String] = [:]
    /// Whether every choice asked for has its finish reason (``deliveredFinish``).
    private var allFinished = false
    private var doneSent = false
    /// Writes the client side for `/v1/responses`; nil for chat and legacy completions.
    private(set) var renderer: ResponsesRenderer?

    /// Whether tool-call pieces are read: the relay joins them (`stream: false`) or renders them (the
    /// Responses API). A stored flag: asking the configuration whether it has a `responses` object copied
    /// that object, ~3,000 instructions a stream.
    let readsToolCalls: Bool

    package init(configuration: Configuration) {
        self.readsToolCalls = !configuration.streaming || configuration.responses != nil
        self.configuration = configuration
        self.renderer = configuration.responses.map(ResponsesRenderer.init)
    }

    // MARK: Client side

    /// The first token of `attempt`: the client hears this attempt from now on. Writes its held
    /// preamble (for the stream's first attempt only: a continuation's role chunk is not repeated)
    /// and then `item`.
    package mutating func commit(_ attempt: Int, first item: Item, into out: inout ByteBuffer) {
        let isFirstSegment = self.segments.isEmpty
        self.segments.append(attempt)
        var held: [Item] = []
        self.attempts.modify(attempt) { swap(&held, &$0.held) }
        if self.identity == nil { self.identity = self.makeIdentity(from: held.first ?? item) }
        if isFirstSegment && self.configuration.streaming {
            if self.renderer != nil {
                self.renderer!.begin(into: &out)
            } else {
                for preamble in held { self.write(preamble, into: &out) }
            }
        }
        self.deliver(item, from: attempt, into: &out)
    }

    /// A `stream: false` answer starts again from nothing (its upstream was lost and it could not be
    /// continued): none of it reached the client, so what was kept of it — text, finish reasons,
    /// usage, identity — is dropped, and the next attempt's answer is the client's whole answer.
    /// Nothing for a streamed answer, whose client already heard it.
    package mutating func restart() {
        guard !self.configuration.streaming else { return }
        for attempt in self.segments { self.attempts[attempt] = nil }
        self.segments = []
        self.deliveredTokens = 0
        self.delivered = TokenText()
        self.reasoning = TokenText()
        self.refusal = TokenText()
        self.otherText = [:]
        self.toolCalls = [:]
        self.aggregateBytes = 0
        self.finishReasons = [:]
        self.allFinished = false
        self.identity = nil
        self.renderer = self.configuration.responses.map(ResponsesRenderer.init)
    }

    /// A later output event of the committed attempt.
    package mutating func deliver(_ item: Item, from attempt: Int, into out: inout ByteBuffer) {
        guard let chunk = item.chunk else { return }
        // Per token: no array is built to walk the choices.
        if let choice = chunk.choice { self.record(choice, of: item.payload) }
        for choice in chunk.otherChoices { self.record(choice, of: item.payload) }
        if Self.isCounted(chunk) { self.deliveredTokens += 1 }
        guard self.configuration.streaming else {
            if Self.hasToolCalls(chunk) { self.keepToolCalls(of: item.payload) }
            return
        }
        if self.renderer != nil {
            // Choice 0 wherever the upstream listed it (it need not be first).
            let first = chunk.choice.flatMap { $0.index == 0 ? $0 : nil }
            if let choice = first ?? chunk.otherChoices.first(where: { $0.index == 0 }) {
                if let thinking = choice.reasoningToken {
                    self.renderer!.reasoning(token: thinking, of: item.payload, into: &out)
                }
                if let token = choice.contentToken, token.count > 2 {
                    if self.renderer!.needsMessage {
                        self.renderer!.openMessage(reasoning: self.reasoning.text, into: &out)
                    }
                    self.renderer!.delta(token: token, of: item.payload, into: &out)
                }
                if let token = choice.refusalToken {
                    if self.renderer!.needsMessage {
                        self.renderer!.openMessage(reasoning: self.reasoning.text, into: &out)
                    }
                    self.renderer!.refusal(token: token, of: item.payload, into: &out)
                }
                if choice.hasToolCalls, let pieces = ToolCall.deltas(inChunk: item.payload)?[0] {
                    self.aggregateBytes += item.payload.readableBytes  // the renderer keeps the arguments
                    // Only the first call closes the items still open, and needs what they hold decoded.
                    let first = self.renderer!.calls.isEmpty
                    self.renderer!.toolCalls(
                        pieces, text: first ? self.deliveredText : "", refusal: first ? self.refusal.text : "",
                        reasoning: first ? self.reasoning.text : "", into: &out)
                }
            }
        } else {
            self.write(item, into: &out)
        }
    }

    /// Keeps a delivered choice's text (its string token in `payload`), thinking and finish reason.
    private mutating func record(_ choice: ChunkScanner.Choice, of payload: ByteBuffer) {
        if let reason = choice.finishReason { self.noteFinish(reason, of: choice.index) }
        if let thinking = choice.reasoningToken, choice.index == 0, self.keepsThinking {
            // Kept for the answer (a streamed chat client got it in the chunk); counted with its text.
            self.reasoning.append(token: thinking, of: payload)
            self.aggregateBytes += thinking.count - 2
        }
        if let refusal = choice.refusalToken, choice.index == 0,
            self.renderer != nil || !self.configuration.streaming
        {
            self.refusal.append(token: refusal, of: payload)
            self.aggregateBytes += refusal.count - 2
        }
        guard let token = choice.contentToken, token.count > 2 else { return }  // absent, null or ""
        if choice.index == 0 {
            self.delivered.append(token: token, of: payload)
        } else if !self.configuration.streaming {
            self.otherText[choice.index, default: TokenText()].append(token: token, of: payload)
        }
        self.aggregateBytes += token.count - 2
    }

    /// Whether choice 0's thinking is kept: for a `stream: false` chat answer, all of it; for the
    /// Responses API only what comes before the text — while the stream has not opened its message,
    /// or (`stream: false`) while no text was delivered — since its reasoning item is the first.
    private var keepsThinking: Bool {
        guard let renderer = self.renderer else { return !self.configuration.streaming }
        return self.configuration.streaming ? renderer.needsMessage : self.delivered.isEmpty
    }

    /// Whether every choice of `item` already delivered its finish reason: output after a choice's
    /// end is an upstream's fault, dropped (the client's answer is complete).
    package func isAfterFinish(_ item: Item) -> Bool {
        guard let chunk = item.chunk, let choice = chunk.choice, self.finishReasons[choice.index] != nil else {
            return false
        }
        return chunk.otherChoices.allSatisfy { self.finishReasons[$0.index] != nil }
    }

    /// Whether every choice asked for (``Configuration/choices``) delivered its finish reason: an
    /// upstream stream that ends cleanly (its HTTP body or HTTP/2 stream), or is lost, before that
    /// and without `[DONE]` was cut short, not finished — with `n` > 1, one choice's end is not the
    /// answer's.
    package var deliveredFinish: Bool { self.allFinished }

    /// Whether any choice delivered its finish reason.
    var finishedAnyChoice: Bool { !self.finishReasons.isEmpty }

    private mutating func noteFinish(_ reason: String, of index: Int) {
        self.finishReasons[index] = reason
        guard !self.allFinished else { return }
        let choices = self.configuration.choices
        self.allFinished =
            choices == 1 ? self.finishReasons[0] != nil : (0..<choices).allSatisfy { self.finishReasons[$0] != nil }
    }

    /// The delivered text of choice 0, decoded (for a continuation, the `stream: false` answer, the
    /// Responses API's closing events and an audit: once per request, not per token).
    package var deliveredText: String { self.delivered.text }

    /// The end of a streamed answer: the usage chunk when asked for, then `[DONE]`, once.
    package mutating func finishStream(into out: inout ByteBuffer) {
        guard !self.doneSent else { return }
        self.doneSent = true
        if self.renderer != nil {
            return self.renderer!.finish(
                text: self.deliveredText, refusal: self.refusal.text, reasoning: self.reasoning.text, usage: self.usage,
                details: self.usageDetails, finishReason: self.finishReasons[0], into: &out)
        }
        if self.configuration.includeUsage, self.segments.count == 1,
            let item = self.attempts.read(self.segments[0], { $0.usageItem }) ?? nil
        {
            // One upstream answered: its usage chunk, every member kept but `usage`, which is the bounded
            // counts with their details.
            self.write(item, into: &out, usage: self.usageWithDetails)
        } else if self.configuration.includeUsage {
            let usage = self.usage
            var json = ByteBuffer()
            self.writeEnvelopeStart(into: &json)
            json.writeStaticString("\"choices\":[],\"usage\":")
            usage.writeJSONObject(into: &json)
            json.writeStaticString("}")
            Self.writeEvent(json, into: &out)
        }
        out.writeStaticString("data: [DONE]\n\n")
    }

    /// Ends a stream whose bounds were reached: a finish chunk with `length` for each choice not finished
    /// yet, then the end.
    package mutating func finishOverLimit(into out: inout ByteBuffer) {
        for index in 0..<max(1, self.configuration.choices) where self.finishReasons[index] == nil {
            if self.configuration.streaming && self.renderer == nil {
                var json = ByteBuffer()
                self.writeEnvelopeStart(into: &json)
                json.writeStaticString("\"choices\":[{\"index\":")
                json.writeString(String(index))
                json.writeStaticString(
                    self.configuration.chat
                        ? ",\"delta\":{},\"finish_reason\":\"length\"}]}"
                        : ",\"text\":\"\",\"finish_reason\":\"length\"}]}")
                Self.writeEvent(json, into: &out)
            }
            self.noteFinish("length", of: index)
        }
    }

    /// The SSE error event (DESIGN.md, Contracts): the stream then ends without `[DONE]`.
    package static func errorEvent(_ error: APIError) -> ByteBuffer {
        SSE.event(JSON.string(error.body))
    }

    /// The mid-stream error as the client's API writes it: ``errorEvent(_:)``, or the Responses
    /// API's `response.failed` event.
    package mutating func clientErrorEvent(_ error: APIError) -> ByteBuffer {
        guard self.renderer != nil else { return Self.errorEvent(error) }
        var out = ByteBuffer()
        self.renderer!.failed(
            error, text: self.deliveredText, refusal: self.refusal.text, reasoning: self.reasoning.text,
            usage: self.usage,
            details: self.usageDetails, into: &out)
        return out
    }
}
