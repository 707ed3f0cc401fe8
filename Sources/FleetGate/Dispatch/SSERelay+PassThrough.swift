import FleetProtocol
package import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The relay's per-token fast path: a run of token chunks passed through as they came.
///
/// Once the client hears an attempt, most of its events are alike — `data: {"id":…,"choices":[{"index":0,
/// "delta":{"content":TOKEN},"finish_reason":null}]}` — and the relay's answer to each is the same: count
/// the token, keep its text, write the event unchanged. ``next(from:)`` reaches that answer through an
/// ``Item`` per event (scan, classify, the state machine's verdict, `write`): ~8,600 instructions a token
/// on the central path (issue #19). An event whose payload is the attempt's learned chunk
/// (``ChunkTemplate``) with another non-empty text, on one `data:` line, is the same answer with nothing
/// to decide: this path reads its token's place (``ChunkTemplate/matchToken(_:)``) and copies the event.
/// Anything else — another shape, a finish reason, usage, an error, a bound reached — stops the run and
/// is read by ``next(from:)`` as before, so the two paths give the client the same bytes
/// (`SSERelayPassThroughTests` compares them).
extension SSERelay {
    /// Forwards the attempt's buffered events that are plain text tokens of the stream the client hears,
    /// as they came, into `out`; returns how many. Only for the committed attempt of a streamed chat
    /// or legacy completion (not the Responses API), after its first token; stops at the first other
    /// event (left for ``next(from:)``), at the client's `max_tokens`, at the event bound.
    package mutating func forwardTokens(from attempt: Int, into out: inout ByteBuffer) -> Int {
        guard self.configuration.streaming, self.renderer == nil, self.segments.last == attempt,
            !self.finishedAnyChoice,  // text after a choice's end is not passed on (isAfterFinish)
            let identity = self.identity
        else { return 0 }
        let maxTokens = self.outputTokenBound
        let maxBytes = self.configuration.maxAggregateBytes - self.aggregateBytes
        let maxEvents = self.configuration.maxEventsPerAttempt
        var delivered = self.deliveredTokens
        // Moved out and back, not copied: the closure below may not touch `self` while it holds the
        // attempt's state.
        var text = TokenText()
        swap(&text, &self.delivered)
        var escaped = 0
        let forwarded =
            self.attempts.modify(attempt) { state -> Int in
                guard !state.ended,  // (an event too large ended it: next(from:) sets both)
                    let idRange = Self.passThroughID(of: state.template)
                else { return 0 }
                // One copy a run: reading it from `state` inside the closure below copied it a token.
                let template = state.template
                var count = 0
                var idChecked = false
                let events = state.events
                // The run is walked in the decoder's buffer, its events back to back, and taken as one view
                // of it, written once: one buffer access a run, where an event each (the decoder's, then the
                // relay's to read it) cost two run-time exclusivity checks a token (~260 instructions).
                // An event it declines stays in the decoder for next(from:); so does one too large, which
                // next(from:) then refuses.
                let run = state.decoder.take { raw -> Bool in
                    guard delivered < maxTokens, events + count < maxEvents, escaped < maxBytes,
                        let payload = Self.passThroughPayload(raw),
                        let token = template.matchToken(UnsafeRawBufferPointer(rebasing: raw[payload])),
                        token.count > 2  // `""` is not a token: next(from:) reads it
                    else { return false }
                    if !idChecked {
                        // The id lies before the text, in the bytes every match shares: one look a run.
                        let id = payload.lowerBound + idRange.lowerBound
                        guard identity.isID(id..<(id + idRange.count), in: raw) else { return false }
                        idChecked = true
                    }
                    let start = payload.lowerBound + token.lowerBound
                    text.append(token: UnsafeRawBufferPointer(rebasing: raw[start..<(start + token.count)]))
                    escaped += token.count - 2
                    delivered += 1
                    count += 1
                    return true
                }
                state.events += count
                if let run { out.writeImmutableBuffer(run) }
                return count
            } ?? 0
        swap(&text, &self.delivered)
        self.deliveredTokens = delivered
        self.aggregateBytes += escaped
        return forwarded
    }

    /// Where the id is in the learned chunk, when events matching it may pass through unchanged: one
    /// choice (index 0) with text, no role, finish reason, tool call, usage or error, and the id before
    /// the text (so every match has it at the same place). Nil otherwise.
    private static func passThroughID(of template: ChunkTemplate) -> Range<Int>? {
        guard let chunk = template.learnedChunk, !chunk.isError, chunk.hasChoices, !chunk.carriesUsage,
            chunk.otherChoices.isEmpty, let choice = chunk.choice, choice.index == 0, !choice.hasRole,
            choice.finishReason == nil, !choice.hasToolCalls, !choice.hasOtherOutput, let token = choice.contentToken,
            let id = chunk.idRange, id.upperBound <= token.lowerBound
        else { return nil }
        return id
    }

    /// The payload's range in an event that is exactly `data: PAYLOAD\n\n` — the decoder's one-line
    /// shape (``SSE/Decoder/singleLinePayload(of:)``) with the space and no carriage return anywhere, so
    /// the event's bytes are what ``writeEvent(_:into:)`` would write; nil for any other event.
    private static func passThroughPayload(_ raw: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let payload = SSE.Decoder.singleLinePayload(of: raw), payload.lowerBound == 6,
            payload.upperBound == raw.count - 2,
            memchr(raw.baseAddress! + 6, Int32(UInt8(ascii: "\r")), payload.count) == nil
        else { return nil }
        return payload
    }
}
