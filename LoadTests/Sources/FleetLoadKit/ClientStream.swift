import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
import NIOCore

/// One client request on an HTTP/2 connection to the gateway: sends it, times every content
/// event, checks the text against the reference, reads where it was served, cancels it mid-stream
/// when the plan says so, and hands the ``RequestResult`` to `done` when the stream closes.
final class ClientStream: HTTPStreamDelegate {
    let request: RunPlan.Request
    let start: NIODeadline
    let done: (RequestResult, String) -> Void
    /// The content received, kept only when a later turn of the conversation will carry it.
    var answer = ""
    var stream: (any HTTPStream)?
    var result: RequestResult
    var reference: ReferenceText
    var decoder = SSE.Decoder()
    var body = ByteBuffer()
    var lastEvent: NIODeadline?
    var sawDone = false
    var finished = false

    init(
        request: RunPlan.Request, result: RequestResult, start: NIODeadline,
        done: @escaping (RequestResult, String) -> Void
    ) {
        self.request = request
        self.result = result
        self.start = start
        self.done = done
        self.reference = ReferenceText(requestSeed: request.seed)
    }

    private func micros(_ since: NIODeadline) -> Int { Int((NIODeadline.now() - since).nanoseconds / 1000) }

    func streamDidReceiveResponse(_ response: HTTPResponse) {
        self.result.status = response.status.code
        self.readFleetHeaders(response.headerFields)
    }

    private func readFleetHeaders(_ fields: HTTPFields) {
        func value(_ name: String) -> String? { HTTPField.Name(name).flatMap { fields[$0] } }
        if let route = value(FleetHeader.route) { self.result.route = route }
        if let zone = value(FleetHeader.zone) { self.result.zone = zone }
        if let region = value(FleetHeader.region) { self.result.region = region }
        if let origin = value(FleetHeader.originRegion) { self.result.originRegion = origin }
        if let attempts = value(FleetHeader.attempts).flatMap({ Int($0) }) { self.result.attempts = attempts }
        if let migrations = value(FleetHeader.migrations).flatMap({ Int($0) }) { self.result.migrations = migrations }
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        self.stream?.consume(data.readableBytes)
        // Once reset (a planned cancellation, or a malformed event), DATA already in flight in the
        // same read still arrives: it is not part of what the client accepted. Checking it would
        // see a gap (the events after the cancelling one in its batch were dropped) and call it a
        // lost token — what made one smoke run in four fail (seed 7, request lt-7-445).
        guard !self.finished else { return }
        guard self.result.status == 200, self.request.streaming else {
            var data = data
            self.body.writeBuffer(&data)
            return
        }
        let events: [SSE.Decoder.Event]
        do { events = try self.decoder.feed(data) } catch {
            return self.fail("sse_too_large")
        }
        for event in events {
            if let payload = event.payload, SSE.isDone(payload) {
                self.sawDone = true
                continue
            }
            var raw = ByteBuffer(string: event.data)
            guard let chunk = try? ChunkScanner.scan(raw, range: 0..<raw.readableBytes) else {
                return self.fail("malformed_chunk")
            }
            if chunk.isError {
                self.result.error = Self.errorCode(in: raw.readString(length: raw.readableBytes) ?? "")
                continue
            }
            guard let content = chunk.choice?.content, !content.isEmpty else { continue }
            let now = NIODeadline.now()
            if let last = self.lastEvent {
                self.result.gapsMicros.append(Int32(clamping: (now - last).nanoseconds / 1000))
            } else {
                self.result.ttftMicros = Int((now - self.start).nanoseconds / 1000)
            }
            self.lastEvent = now
            self.reference.feed(content)
            if self.request.hasNextTurn { self.answer += content }
            self.result.tokens = self.reference.tokenCount
            if let after = self.request.cancelAfter, self.result.tokens >= after, !self.finished {
                self.finished = true
                self.result.outcome = .cancelled
                self.stream?.reset(.cancel)
                return
            }
        }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        if let trailers { self.readFleetHeaders(trailers) }
    }

    func streamDidClose(error: HTTPStreamError?) {
        self.result.totalMicros = self.micros(self.start)
        defer { self.done(self.result, self.answer) }
        if self.result.outcome == .cancelled { return self.checkText(complete: false) }
        if let error {
            self.result.error =
                self.result.error ?? (error == .connectionClosed ? "connection_lost" : "reset_\(error.code.rawValue)")
            self.result.outcome = .failed
            return self.checkText(complete: false)
        }
        guard self.result.status == 200 else {
            self.result.error =
                Self.errorCode(
                    in: self.body.getString(at: self.body.readerIndex, length: self.body.readableBytes) ?? "")
                ?? "http_\(self.result.status)"
            self.result.outcome = .failed
            return
        }
        if !self.request.streaming {
            let response = try? JSONDecoder().decode(
                CompletionResponse.self, from: Data(self.body.readableBytesView))
            guard let text = response?.choices.first?.message?.content else {
                self.result.error = "malformed_body"
                self.result.outcome = .failed
                return
            }
            self.result.ttftMicros = self.result.totalMicros
            self.reference.feed(text)
            if self.request.hasNextTurn { self.answer = text }
            self.result.tokens = self.reference.tokenCount
            self.checkText(complete: true)
            self.result.outcome = self.result.textError == nil ? .ok : .failed
            if let textError = self.result.textError { self.result.error = "text_\(textError.rawValue)" }
            return
        }
        if self.result.error != nil || !self.sawDone {
            self.result.error = self.result.error ?? "no_done"
            self.result.outcome = .failed
            return self.checkText(complete: false)
        }
        self.checkText(complete: true)
        self.result.outcome = self.result.textError == nil ? .ok : .failed
        if self.result.textError != nil { self.result.error = "text_\(self.result.textError!.rawValue)" }
    }

    /// A complete answer must hold `max_tokens` tokens (the synthetic engine always runs to the limit).
    private func checkText(complete: Bool) {
        if complete { self.reference.finish(expectingTokens: self.request.maxTokens) }
        self.result.textError = self.reference.error
    }

    private func fail(_ code: String) {
        self.result.error = code
        self.finished = true
        self.stream?.reset(.cancel)
    }

    /// `"code":"…"` (or `"type":"…"`) of an OpenAI error body.
    static func errorCode(in text: String) -> String? {
        guard let data = text.data(using: .utf8),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let error = object["error"] as? [String: Any]
        else { return nil }
        return (error["code"] as? String) ?? (error["type"] as? String)
    }
}
