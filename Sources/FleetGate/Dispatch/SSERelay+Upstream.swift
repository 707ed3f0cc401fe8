package import FleetProtocol
package import NIOCore

/// The upstream side of the relay: each attempt's bytes split into SSE events (``SSE/Decoder``) and
/// classified (``Kind``): what the dispatcher acts on before anything reaches the client.
extension SSERelay {

    /// Starts parsing a new attempt's stream; `repeating`: the delivered tokens its prompt repeats
    /// (a prefix continuation's), left out of the usage's `prompt_tokens`. `untrusted`: a car's, whose
    /// `completion_tokens` are also bounded by the bytes it sent (``AttemptState/untrusted``).
    package mutating func open(attempt: Int, repeating: Int = 0, untrusted: Bool = false) {
        self.attempts[attempt] = AttemptState(
            decoder: SSE.Decoder(maxEventBytes: self.configuration.maxEventBytes), repeatedTokens: repeating,
            untrusted: untrusted)
    }

    /// Forgets an attempt (failed or cancelled).
    package mutating func close(attempt: Int) {
        self.attempts[attempt] = nil
    }

    /// Adds an attempt's bytes; ``next(from:)`` then returns the items they complete, one at a time
    /// (no array of events and of items per read: a burst's 32 chunks were ~80 k instructions of
    /// copies). Bytes after the attempt's end (its `[DONE]`, an error, a bound) are dropped.
    package mutating func append(_ data: ByteBuffer, from attempt: Int) {
        self.attempts.modify(attempt) { state in
            guard !state.ended else { return }
            state.receivedBytes += data.readableBytes
            state.decoder.append(data)
        }
    }

    /// The next classified event of an attempt's bytes; nil until more arrive, and after its end.
    package mutating func next(from attempt: Int) -> Item? {
        let limit = self.configuration.maxEventsPerAttempt
        let chat = self.configuration.chat
        let whole = self.readsToolCalls
        let choices = self.configuration.choices
        return self.attempts.modify(attempt) { state -> Item? in
            while !state.ended {
                var event: SSE.Decoder.Event?
                if !state.tooLarge {
                    do {
                        event = try state.decoder.next()
                    } catch {
                        state.tooLarge = true
                    }
                }
                if state.tooLarge && event == nil {
                    // The events before the oversized one were returned by earlier calls.
                    state.ended = true
                    return Item(kind: .malformed(label: "event_too_large"), payload: ByteBuffer(), chunk: nil)
                }
                guard let event else { return nil }
                guard let payload = event.payload else { continue }  // a comment or bare fields
                state.events += 1
                if state.events > limit {
                    state.ended = true
                    return Item(kind: .overLimit, payload: payload, chunk: nil)
                }
                let item = Self.classify(payload, chat: chat, whole: whole, choices: choices, attempt: &state)
                switch item.kind {
                case .done, .upstreamError, .malformed: state.ended = true
                default: break
                }
                return item
            }
            return nil
        } ?? nil
    }

    /// Whether the attempt holds bytes ``next(from:)`` has not returned yet (more of the same read,
    /// or the start of an event still arriving).
    package func hasBufferedBytes(from attempt: Int) -> Bool {
        self.attempts.read(attempt) { !$0.ended && $0.decoder.bufferedBytes > 0 } ?? false
    }

    /// Splits and classifies an attempt's bytes at once: ``append(_:from:)``, then ``next(from:)``
    /// until nil (the SSE fuzzer's and the tests' way in).
    package mutating func receive(_ data: ByteBuffer, from attempt: Int) -> [Item] {
        self.append(data, from: attempt)
        var items: [Item] = []
        while let item = self.next(from: attempt) { items.append(item) }
        return items
    }

    /// `whole`: the client asked for `stream: false`, whose answer the relay joins from the chunks —
    /// tool calls among them, which it must then be able to read.
    private static func classify(
        _ payload: ByteBuffer, chat: Bool, whole: Bool, choices: Int, attempt: inout AttemptState
    ) -> Item {
        if SSE.isDone(payload) { return Item(kind: .done, payload: payload, chunk: nil) }
        let chunk: ChunkScanner.Chunk
        do {
            chunk = try ChunkScanner.scan(
                payload, range: 0..<payload.readableBytes, content: .token, template: &attempt.template)
        } catch {
            return Item(kind: .malformed(label: "bad_json"), payload: payload, chunk: nil)
        }
        if chunk.isError { return Item(kind: .upstreamError, payload: payload, chunk: chunk) }
        guard chunk.hasChoices else { return Item(kind: .malformed(label: "bad_chunk"), payload: payload, chunk: nil) }
        if Self.hasOtherShape(chunk, chat: chat) {
            return Item(kind: .malformed(label: "wrong_shape"), payload: payload, chunk: nil)
        }
        // A choice the client did not ask for (`n` of them, numbered from 0): a car that answered an n = 1
        // request with a choice at index 5 gave a `stream: false` client two choices, and streamed it on
        // (helper-72).
        if chunk.choice.map({ !(0..<choices).contains($0.index) }) == true
            || chunk.otherChoices.contains(where: { !(0..<choices).contains($0.index) })
        {
            return Item(kind: .malformed(label: "bad_choice_index"), payload: payload, chunk: nil)
        }
        if whole && Self.hasToolCalls(chunk) && ToolCall.deltas(inChunk: payload) == nil {
            // Streamed, the pieces pass on as they came (the app's SDK reads them); joined into one
            // answer they must have the shape of tool calls, or the answer would lose them.
            return Item(kind: .malformed(label: "bad_tool_call"), payload: payload, chunk: nil)
        }
        if chunk.hasUsage {
            attempt.promptTokens = chunk.promptTokens
            attempt.completionTokens = chunk.completionTokens
        }
        if chunk.carriesOutput { return Item(kind: .output, payload: payload, chunk: chunk) }
        if chunk.choice == nil && chunk.hasUsage {
            let item = Item(kind: .usage, payload: payload, chunk: chunk)
            attempt.usageItem = item
            return item
        }
        return Item(kind: .preamble, payload: payload, chunk: chunk)
    }

    /// Whether a choice has the other API's shape: `text` without `delta` in a chat stream, `delta`
    /// without `text` in a legacy completion's. Passed on, it reached the client as chunks with no
    /// text it reads (the openai SDK saw `delta` None throughout: an attack, session 18); it is an
    /// upstream fault, as a whole answer of the other shape is (``CentralAnswer``).
    static func hasOtherShape(_ chunk: ChunkScanner.Chunk, chat: Bool) -> Bool {
        func other(_ choice: ChunkScanner.Choice) -> Bool {
            chat ? choice.hasText && !choice.hasDelta : choice.hasDelta && !choice.hasText
        }
        return chunk.choice.map(other) == true || chunk.otherChoices.contains(where: other)
    }

    /// Keeps an attempt's preamble until its first token.
    package mutating func hold(_ item: Item, from attempt: Int) {
        self.attempts.modify(attempt) { state in
            if state.held.count < 4 { state.held.append(item) }
        }
    }

    /// Whether delivering one more token would pass the client's `max_tokens` or the aggregate bound.
    package func wouldExceedLimits(_ item: Item) -> Bool {
        if self.deliveredTokens >= self.outputTokenBound, let chunk = item.chunk, Self.isCounted(chunk) {
            return true
        }
        return self.aggregateBytes >= self.configuration.maxAggregateBytes
    }

    /// The most tokens the client gets, over every choice: `max_tokens` is each choice's (helper-112: with
    /// `n: 2` the stream was cut at `max_tokens` tokens in all, and the second choice never finished). A
    /// bound against an upstream that runs on, not a count per choice.
    var outputTokenBound: Int {
        guard let limit = self.configuration.maxOutputTokens else { return .max }
        let (bound, overflow) = limit.multipliedReportingOverflow(by: max(1, self.configuration.choices))
        return overflow ? .max : bound
    }

    /// Whether the client has all the output the request's bounds allow (one choice's `max_tokens`, or the
    /// bytes held): an upstream lost now leaves nothing to continue.
    package var reachedOutputLimit: Bool {
        if self.configuration.choices == 1, let limit = self.configuration.maxOutputTokens,
            self.deliveredTokens >= limit
        {
            return true
        }
        return self.aggregateBytes >= self.configuration.maxAggregateBytes
    }

    /// Whether a chunk counts as a token of output: text in any choice (not `""`), or a tool call or
    /// other output (thinking among it) in the first. One rule for ``deliver(_:from:into:)``, which counts
    /// it, and ``wouldExceedLimits(_:)``, which stops it at `max_tokens` — the bound checked only the first
    /// choice's text and thinking, and a chunk of other output went out, counted past the limit (the SSE
    /// fuzzer).
    static func isCounted(_ chunk: ChunkScanner.Chunk) -> Bool {
        func text(_ choice: ChunkScanner.Choice) -> Bool { (choice.contentToken?.count ?? 0) > 2 }
        if let choice = chunk.choice, text(choice) || choice.hasToolCalls || choice.hasOtherOutput { return true }
        return chunk.otherChoices.contains(where: text)
    }
}
