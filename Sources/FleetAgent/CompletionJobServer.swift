import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
import Logging
import NIOCore

/// Serves one completion request: reads the body, takes a slot, runs the engine, and writes
/// its tokens as OpenAI SSE chunks (or one JSON object when `stream` is false).
///
/// Responsibilities:
/// 1. bound the body (413) and validate it (400, 404 for an unknown model);
/// 2. refuse when no slot is free: `REFUSED_STREAM` on HTTP/2 (safe to retry, RFC 9113 §8.7), 429 on HTTP/1.1;
/// 3. pause the engine while the stream is not writable, resume when it is;
/// 4. cancel the engine the moment the stream is reset (the client went away) — no more tokens are generated.
final class CompletionJobServer: HTTPStreamDelegate, TokenSink {
    let responder: AgentResponder
    let stream: any HTTPStream
    let chat: Bool
    let requestSeed: UInt64?
    let resumeFrom: Int
    /// The gateway asked for SSE with usage regardless of the body (`x-fleet-stream: sse-usage`).
    let forcedStreaming: Bool
    let requestID: String?
    /// The zone the gateway enforced (`x-fleet-zone`), for the job record.
    let zone: String?
    /// `x-fleet-continuation: prefix`: continue the body's final assistant message.
    let continuesText: Bool
    let startedAt = Date()
    var recorded = false
    var body: BodyAccumulator
    var job: (any InferenceJobHandle)?
    var holdsSlot = false
    var streaming = true
    var includeUsage = false
    var model = ""
    var text = ""
    /// A reasoning model's thinking, for a `stream: false` answer.
    var reasoning = ""
    /// The model's refusal, for a `stream: false` answer.
    var refusal = ""
    /// The model's function calls: joined for a `stream: false` answer, numbered and trimmed as streamed.
    var toolCalls = ToolCallPieces()
    var completionTokens = 0
    let id: String
    let created = Int(Date().timeIntervalSince1970)
    /// Between ``beginBatch()`` and ``endBatch()``: the batch's chunks, written to the stream once at its end.
    private var batch: ByteBuffer?

    init(responder: AgentResponder, stream: any HTTPStream, request: HTTPRequest, chat: Bool) {
        self.responder = responder
        self.stream = stream
        self.chat = chat
        self.id = CompletionID.make(chat: chat)
        self.body = BodyAccumulator(limit: responder.maxBodyBytes)
        let headers = JobRequestHeaders(request.headerFields)
        self.requestSeed = headers.seed.flatMap { UInt64($0) }
        self.resumeFrom = headers.resumeFrom.flatMap { Int($0) } ?? 0
        self.requestID = headers.requestID
        self.zone = headers.zone
        self.continuesText = headers.continuation == "prefix"
        self.forcedStreaming = headers.streamMode == "sse-usage"
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        _ = self.body.append(data, consumingOn: self.stream)
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        if self.body.exceeded { return self.sendError(.bodyTooLarge(limit: self.body.limit)) }
        let request: CompletionRequest
        if let fast = CompletionRequest.fastDecode(self.body.buffer) {
            request = fast  // JSONDecoder's result, without its cost (see fastDecode)
        } else {
            do {
                request = try JSON.decodeRequest(CompletionRequest.self, from: self.body.buffer)
            } catch {
                return self.sendError(error)
            }
        }
        if self.chat && (request.messages ?? []).isEmpty {
            return self.sendError(.invalidRequest("'messages' must be a non-empty array.", param: "messages"))
        }
        if let limit = request.outputLimit, limit < 1 {
            return self.sendError(.invalidRequest("'max_tokens' must be at least 1.", param: "max_tokens"))
        }
        // A job is one choice of text: asked for more, or for log probabilities, say so rather than answer
        // without them (helper-60: `fleet-agent serve` as central capacity dropped both silently).
        if let n = request.n, n > 1 {
            return self.sendError(
                .invalidRequest("'n' above 1 is not served here: an agent's job is one choice.", param: "n"))
        }
        // The gateway's own test of it (`wantsLogprobs`): what it sends a car, a car serves.
        if request.wantsLogprobs {
            return self.sendError(
                .invalidRequest(
                    "'logprobs' is not served here: an agent's jobs carry no log probabilities.", param: "logprobs"))
        }
        if let extras = RequestExtras.of(self.body.buffer), extras.wantsAudio {
            let param = extras.audioParam
            return self.sendError(
                .invalidRequest("Audio output is not served here: an agent's jobs are text.", param: param))
        }
        guard self.responder.engine.serves(model: request.model) else {
            return self.sendError(.modelNotFound(request.model))
        }
        guard self.responder.state.acquireSlot() else {
            if self.stream is HTTP2Stream { return self.stream.reset(.refusedStream) }
            return self.sendError(.rateLimited("All inference slots of this car are busy."))
        }
        self.holdsSlot = true
        self.responder.state.recordJob(requestID: self.requestID ?? "-")
        self.streaming = self.forcedStreaming || (request.stream ?? false)
        self.includeUsage = self.forcedStreaming || (request.streamOptions?.includeUsage ?? false)
        self.model = request.model
        let prompt = request.promptText
        var job = InferenceJob(
            model: request.model, prompt: prompt, maxTokens: request.plannedOutputLimit,
            stop: request.stop?.values ?? [],
            seed: self.requestSeed ?? SyntheticText.seed(for: prompt, requested: request.seed),
            resumeFrom: self.resumeFrom, body: request)
        job.continuesText = self.continuesText
        job.rawBody = self.body.buffer
        if self.streaming {
            var response = HTTPResponse(status: .ok)
            response.headerFields[.contentType] = "text/event-stream"
            response.headerFields[.cacheControl] = "no-cache"
            self.stream.sendResponse(response, endStream: false)
            if self.chat && self.resumeFrom == 0 {
                self.writeChoice(#""delta":{"role":"assistant","content":""},"finish_reason":null"#)
            }
        }
        self.job = self.responder.engine.start(job, on: self.stream.eventLoop, sink: self)
    }

    func streamWritabilityDidChange(isWritable: Bool) {
        if isWritable { self.job?.resume() }
    }

    func streamDidClose(error: HTTPStreamError?) {
        if self.job != nil { self.record(outcome: "cancelled") }
        self.job?.cancel()
        self.job = nil
        self.releaseSlot()
    }

    /// Appends this job's record to the job log, once (no text, only counts and ids).
    private func record(outcome: String) {
        guard let log = self.responder.jobLog, !self.recorded, self.holdsSlot else { return }
        self.recorded = true
        log.append(
            JobLog.Record(
                requestID: self.requestID ?? "-", zone: self.zone, region: log.region, vehicleID: log.vehicleID,
                resumeFrom: self.resumeFrom, tokens: self.completionTokens, outcome: outcome,
                started: self.startedAt.timeIntervalSince1970, ended: Date().timeIntervalSince1970))
    }

    // MARK: TokenSink

    var wantsMore: Bool { self.stream.isWritable && !self.stream.isClosed }

    func emit(token: String) {
        self.completionTokens += 1
        if self.streaming {
            self.writeToken(token)
        } else {
            self.text += token
        }
    }

    func emit(tokenJSON: UnsafeRawBufferPointer) {
        guard self.streaming else {
            return self.emit(token: ChunkScanner.string(tokenJSON, range: 0..<tokenJSON.count))
        }
        self.completionTokens += 1
        if self.batch != nil {
            self.appendToken(json: tokenJSON, to: &self.batch!)
            return
        }
        var event = ByteBuffer()
        event.reserveCapacity(self.tokenPrefix.readableBytes + tokenJSON.count + 40)
        self.appendToken(json: tokenJSON, to: &event)
        self.stream.sendData(event, endStream: false)
    }

    func emit(reasoningJSON token: UnsafeRawBufferPointer) {
        self.emitOther(token, member: "\"delta\":{\"reasoning_content\":", keeping: &self.reasoning)
    }

    func emit(refusalJSON token: UnsafeRawBufferPointer) {
        self.emitOther(token, member: "\"delta\":{\"refusal\":", keeping: &self.refusal)
    }

    func emit(toolCalls: [ToolCall]) {
        guard self.chat else { return }
        self.completionTokens += 1
        let pieces = self.toolCalls.place(toolCalls, answerID: self.id)
        guard self.streaming else { return }
        var event = ByteBuffer()
        event.writeImmutableBuffer(self.chunkPrefix)
        event.writeStaticString("\"delta\":{\"tool_calls\":")
        event.writeImmutableBuffer(JSON.buffer(pieces))
        event.writeStaticString("},\"finish_reason\":null}]}\n\n")
        if self.batch != nil {
            self.batch!.writeImmutableBuffer(event)
        } else {
            self.stream.sendData(event, endStream: false)
        }
    }

    /// A piece of output other than the text: counted, streamed as its own delta `member`, or kept in
    /// `text` for a `stream: false` answer. A legacy completion has no member for it.
    private func emitOther(_ token: UnsafeRawBufferPointer, member: StaticString, keeping text: inout String) {
        guard self.chat else { return }
        self.completionTokens += 1
        guard self.streaming else {
            text += ChunkScanner.string(token, range: 0..<token.count)
            return
        }
        self.writeDelta(member: member, json: token)
    }

    /// A chunk of one delta member other than the text (thinking, a refusal), in the batch or alone.
    private func writeDelta(member: StaticString, json token: UnsafeRawBufferPointer) {
        if self.batch != nil {
            self.appendDelta(member: member, json: token, to: &self.batch!)
            return
        }
        var event = ByteBuffer()
        event.reserveCapacity(self.chunkPrefix.readableBytes + token.count + 64)
        self.appendDelta(member: member, json: token, to: &event)
        self.stream.sendData(event, endStream: false)
    }

    func finish(reason: String, promptTokens: Int, completionTokens: Int, details: UsageDetails?) {
        self.endBatch()
        self.record(outcome: "completed")
        self.responder.state.jobFailures.served(logger: self.responder.logger)
        self.job = nil
        self.releaseSlot()
        if self.responder.engine.measuresRates {
            let engine = self.responder.engine
            self.responder.state.reportRates { engine.models }
        }
        let usage = Usage(promptTokens: promptTokens, completionTokens: completionTokens, details: details)
        if self.streaming {
            var choice = ByteBuffer()
            choice.writeStaticString(self.chat ? #""delta":{},"finish_reason":"# : #""text":"","finish_reason":"#)
            JSONBody.writeJSONString(reason, into: &choice)
            self.writeChoice(choice)
            if self.includeUsage { self.writeUsage(usage) }
            self.stream.sendData(SSE.event(SSE.done), endStream: true)
        } else {
            let choice = CompletionResponse.Choice(
                index: 0,
                message: self.chat
                    ? ChatMessage(
                        role: "assistant", content: self.text,
                        reasoningContent: self.reasoning.isEmpty ? nil : self.reasoning,
                        refusal: self.refusal.isEmpty ? nil : self.refusal,
                        toolCalls: self.toolCalls.calls.isEmpty
                            ? nil
                            : self.toolCalls.calls.toolCalls(
                                missingIDPrefix: ToolCall.missingIDPrefix(answerID: self.id)))
                    : nil,
                text: self.chat ? nil : self.text, finishReason: reason)
            let response = CompletionResponse(
                id: self.id, object: self.chat ? "chat.completion" : "text_completion", created: self.created,
                model: self.model, choices: [choice], usage: usage)
            self.stream.sendResponse(status: .ok, contentType: "application/json", body: JSON.buffer(response))
        }
    }

    func beginBatch() {
        if self.batch == nil { self.batch = ByteBuffer() }
    }

    func endBatch() {
        guard let batch = self.batch else { return }
        self.batch = nil
        if batch.readableBytes > 0 { self.stream.sendData(batch, endStream: false) }
    }

    func fail(_ error: EngineError) {
        self.endBatch()
        self.record(outcome: "failed")
        // A rejection of the request itself (a 4xx) is the runtime working, a busy one (429, 503) only
        // full (helper-132); anything else, it failing.
        if error.rejectedStatus == nil, error.code != APIError.upstreamBusyCode {
            self.responder.state.jobFailures.failed(code: error.code, logger: self.responder.logger)
        }
        self.job = nil
        self.releaseSlot()
        var apiError = APIError(status: 502, type: "server_error", code: error.code, message: error.message)
        if let status = error.rejectedStatus {
            apiError = APIError(
                status: status, type: "invalid_request_error", code: error.code, message: error.message,
                param: error.param)
        }
        if self.streaming {
            // DESIGN.md, Contracts: an error event, then the stream ends without [DONE]; a rejection
            // of the request itself carries its status (`fleet_status`, docs/protocol.md).
            var body = apiError.body
            body.fleetStatus = error.rejectedStatus
            self.stream.sendData(SSE.event(JSON.string(body)), endStream: true)
        } else {
            self.sendError(apiError)
        }
    }

    // MARK: Helpers

    private var objectName: String { self.chat ? "chat.completion.chunk" : "text_completion" }

    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[` — the same for every chunk of
    /// the job, so it is written once.
    private lazy var chunkHead: ByteBuffer = {
        var head = ByteBuffer()
        head.writeStaticString("data: {\"id\":")
        JSONBody.writeJSONString(self.id, into: &head)
        head.writeStaticString(",\"object\":")
        JSONBody.writeJSONString(self.objectName, into: &head)
        head.writeStaticString(",\"created\":")
        head.writeString(String(self.created))
        head.writeStaticString(",\"model\":")
        JSONBody.writeJSONString(self.model, into: &head)
        head.writeStaticString(",\"choices\":[")
        return head
    }()

    /// The head and the start of the one choice: `…"choices":[{"index":0,`.
    private lazy var chunkPrefix: ByteBuffer = {
        var prefix = self.chunkHead
        prefix.writeStaticString("{\"index\":0,")
        return prefix
    }()

    /// The prefix and the start of a token's field: `"delta":{"content":` or `"text":`.
    private lazy var tokenPrefix: ByteBuffer = {
        var prefix = self.chunkPrefix
        prefix.writeStaticString(self.chat ? "\"delta\":{\"content\":" : "\"text\":")
        return prefix
    }()

    /// One token's chunk, written directly (issue #19: a JSONEncoder per token was a sixth of the
    /// agent's CPU); the JSON ``ChunkChoice`` encodes, as the role and finish chunks are.
    private func writeToken(_ token: String) {
        if self.batch != nil {
            // Into the batch: no buffer and no stream write per token.
            self.appendToken(token, to: &self.batch!)
            return
        }
        var event = ByteBuffer()
        event.reserveCapacity(self.tokenPrefix.readableBytes + token.utf8.count + 40)
        self.appendToken(token, to: &event)
        self.stream.sendData(event, endStream: false)
    }

    private func appendToken(_ token: String, to event: inout ByteBuffer) {
        event.writeImmutableBuffer(self.tokenPrefix)
        JSONBody.writeJSONString(token, into: &event)
        event.writeStaticString(self.chat ? "},\"finish_reason\":null}]}\n\n" : ",\"finish_reason\":null}]}\n\n")
    }

    /// The same from the runtime's JSON string token, the same bytes (``JSONBody/writeJSONString(token:into:)``):
    /// when the token is written as it came, the chunk is one write of prefix, token and suffix.
    private func appendToken(json token: UnsafeRawBufferPointer, to event: inout ByteBuffer) {
        let suffix: StaticString = self.chat ? "},\"finish_reason\":null}]}\n\n" : ",\"finish_reason\":null}]}\n\n"
        guard JSONBody.isCanonical(token) else {
            event.writeImmutableBuffer(self.tokenPrefix)
            JSONBody.writeJSONString(token: token, into: &event)
            event.writeStaticString(suffix)
            return
        }
        self.tokenPrefixBytes.withUnsafeBytes { prefix in
            event.writeConcatenation(
                prefix, token, UnsafeRawBufferPointer(start: suffix.utf8Start, count: suffix.utf8CodeUnitCount))
        }
    }

    /// A chunk of thinking or of a refusal: `member` (`"delta":{"reasoning_content":`) and the
    /// runtime's string token as it came (or escaped again, as ``appendToken(json:to:)`` writes it).
    private func appendDelta(member: StaticString, json token: UnsafeRawBufferPointer, to event: inout ByteBuffer) {
        event.writeImmutableBuffer(self.chunkPrefix)
        event.writeStaticString(member)
        if JSONBody.isCanonical(token) {
            event.writeBytes(token)
        } else {
            JSONBody.writeJSONString(token: token, into: &event)
        }
        event.writeStaticString("},\"finish_reason\":null}]}\n\n")
    }

    /// ``tokenPrefix``'s bytes, for ``appendToken(json:to:)``.
    private lazy var tokenPrefixBytes: [UInt8] = Array(self.tokenPrefix.readableBytesView)

    /// A chunk whose one choice has these members after `"index":0,` (already JSON).
    private func writeChoice(_ members: ByteBuffer) {
        var event = ByteBuffer()
        event.reserveCapacity(self.chunkPrefix.readableBytes + members.readableBytes + 8)
        event.writeImmutableBuffer(self.chunkPrefix)
        event.writeImmutableBuffer(members)
        event.writeStaticString("}]}\n\n")
        self.stream.sendData(event, endStream: false)
    }

    /// The usage chunk: no choices, then `"usage"` (written directly, like the token chunks: a
    /// JSONEncoder here was 5 % of the agent's CPU per stream, issue #19).
    private func writeUsage(_ usage: Usage) {
        var event = self.chunkHead
        event.writeStaticString("],\"usage\":")
        usage.writeJSONObject(into: &event)
        event.writeStaticString("}\n\n")
        self.stream.sendData(event, endStream: false)
    }

    private func writeChoice(_ members: StaticString) {
        var buffer = ByteBuffer()
        buffer.writeStaticString(members)
        self.writeChoice(buffer)
    }

    private func sendError(_ error: APIError) {
        self.stream.sendResponse(
            status: .init(code: error.status), contentType: "application/json", body: error.jsonBody())
    }

    private func releaseSlot() {
        if self.holdsSlot {
            self.holdsSlot = false
            self.responder.state.releaseSlot()
        }
    }
}
