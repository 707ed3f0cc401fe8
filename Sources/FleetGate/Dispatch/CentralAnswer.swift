package import FleetProtocol
package import NIOCore

/// One `stream: false` answer from central capacity, as the client will get it: central's JSON
/// body collected up to a bound, validated (``AnswerScanner``) and passed on as central wrote it,
/// with only what the client must see differently rewritten. Pure: the ``Dispatcher`` feeds it the
/// attempt's body and acts on ``finish()``.
///
/// The identity follows the rule of the answers the relay assembles from a stream (``SSERelay``):
/// central's `id`, `created` and `model` are kept (the id falls back to the request's when central
/// sends none, the model to the client's, `created` to the request's start); `object` is always `chat.completion` or
/// `text_completion`. Everything else central sends — `system_fingerprint`, `logprobs`, tool calls,
/// every choice of `n > 1`, `usage` with its details — reaches the client byte for byte.
///
/// Bounded: a body past ``Configuration/maxBytes`` is refused as it grows, never held
/// (``append(_:)``). A body that is not such an answer fails the attempt (retryable: another
/// upstream may answer well); one that is too large does not (another would be as large).
package struct CentralAnswer: Sendable {
    /// What the answer must be.
    package struct Configuration: Sendable, Hashable {
        /// `chat.completion` (else `text_completion`).
        package var chat: Bool
        /// The largest body held.
        package var maxBytes: Int
        /// The id when central sends none.
        package var fallbackID: String
        /// The model when central names none: the client's.
        package var model: String
        /// `created` when central says none: the request's start (Unix seconds), as a stream's chunks have it.
        package var created: Int

        package init(chat: Bool, maxBytes: Int, fallbackID: String, model: String, created: Int = 0) {
            self.chat = chat
            self.maxBytes = maxBytes
            self.fallbackID = fallbackID
            self.model = model
            self.created = created
        }
    }

    /// A valid answer, ready for the client.
    package struct Whole: Sendable {
        /// The JSON body for the client.
        package var body: ByteBuffer
        /// `usage.prompt_tokens`, when central said.
        package var promptTokens: Int?
        /// `usage.completion_tokens`, or (when central did not say) an estimate: a token per 4 bytes
        /// of text, and one per tool call.
        package var completionTokens: Int
        /// Whether ``completionTokens`` is central's count.
        package var reported: Bool
    }

    /// What ``finish()`` found.
    package enum Outcome: Sendable {
        case whole(Whole)
        /// Not an answer: the attempt fails so.
        case failed(DispatchStateMachine.Failure)
    }

    /// Bounded labels for metrics and logs.
    package static let tooLargeLabel = "answer_too_large"
    package static let malformedLabel = "bad_answer"
    package static let errorLabel = "upstream_error"

    package let configuration: Configuration
    /// The body so far; nil before the first byte.
    private var body: ByteBuffer?
    /// Set once the body passed the bound: later bytes are dropped.
    package private(set) var exceeded = false

    package init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Adds body bytes. False once past the bound (the attempt must end: ``finish()`` then says so).
    package mutating func append(_ part: ByteBuffer) -> Bool {
        guard !self.exceeded else { return false }
        guard (self.body?.readableBytes ?? 0) + part.readableBytes <= self.configuration.maxBytes else {
            self.exceeded = true
            self.body = nil
            return false
        }
        if self.body == nil {
            self.body = part  // the usual case: the answer came in one read, kept without a copy
        } else {
            self.body!.writeImmutableBuffer(part)
        }
        return true
    }

    /// The answer, or why the attempt failed.
    package func finish() -> Outcome {
        if self.exceeded { return .failed(.init(retryable: false, label: Self.tooLargeLabel)) }
        guard let body = self.body else { return .failed(.init(retryable: true, label: Self.malformedLabel)) }
        let chat = self.configuration.chat
        let result: Result<AnswerScanner.Answer, ChunkScanner.Malformed> = body.withUnsafeReadableBytes { bytes in
            do throws(ChunkScanner.Malformed) { return .success(try AnswerScanner.scan(bytes, chat: chat)) } catch {
                return .failure(error)
            }
        }
        guard case .success(let scanned) = result else {
            return .failed(.init(retryable: true, label: Self.malformedLabel))
        }
        if scanned.isError { return .failed(.init(retryable: true, label: Self.errorLabel)) }
        let estimate = (scanned.textBytes + 3) / 4 + scanned.toolCalls
        return .whole(
            Whole(
                body: self.rewritten(body, scanned), promptTokens: scanned.promptTokens,
                completionTokens: scanned.completionTokens ?? estimate, reported: scanned.completionTokens != nil))
    }

    /// `body` with `object` set right and a missing `id`, `model` or `created` added; `body` itself
    /// (no copy) when nothing is to change, as from any OpenAI-compatible server.
    package func rewritten(_ body: ByteBuffer, _ scanned: AnswerScanner.Answer) -> ByteBuffer {
        let object: StaticString = self.configuration.chat ? "\"chat.completion\"" : "\"text_completion\""
        let objectRight =
            scanned.objectRange.map { range in
                body.withUnsafeReadableBytes { bytes in
                    bytes[range].elementsEqual(
                        UnsafeRawBufferPointer(start: object.utf8Start, count: object.utf8CodeUnitCount))
                }
            } ?? false
        guard !objectRight || scanned.idRange == nil || scanned.modelRange == nil || !scanned.hasCreated else {
            return body
        }
        var out = ByteBuffer()
        out.reserveCapacity(body.readableBytes + 128)
        // Up to the closing brace, the wrong `object` value replaced in place.
        var copied = 0
        if let range = scanned.objectRange, !objectRight {
            out.writeImmutableBuffer(body.getSlice(at: body.readerIndex, length: range.lowerBound)!)
            out.writeStaticString(object)
            copied = range.upperBound
        }
        out.writeImmutableBuffer(body.getSlice(at: body.readerIndex + copied, length: scanned.closingBrace - copied)!)
        // The object has members (`choices` at least): each addition follows a comma.
        if scanned.objectRange == nil {
            out.writeStaticString(",\"object\":")
            out.writeStaticString(object)
        }
        if scanned.idRange == nil {
            out.writeStaticString(",\"id\":")
            JSONBody.writeJSONString(self.configuration.fallbackID, into: &out)
        }
        if scanned.modelRange == nil {
            out.writeStaticString(",\"model\":")
            JSONBody.writeJSONString(self.configuration.model, into: &out)
        }
        if !scanned.hasCreated {
            out.writeStaticString(",\"created\":")
            out.writeString(String(self.configuration.created))
        }
        out.writeImmutableBuffer(
            body.getSlice(
                at: body.readerIndex + scanned.closingBrace, length: body.readableBytes - scanned.closingBrace)!)
        return out
    }
}
