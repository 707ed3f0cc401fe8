internal import CNGHTTP2
import HTTPTypes
import NIOCore

/// What the responder's ``HTTPServerResponder/earlyResponse(method:path:eventLoop:)`` said of a
/// stream's request.
enum EarlyAnswer {
    /// Not asked yet: the pseudo-header fields are still coming.
    case unasked
    /// Nil: the request goes to the responder as usual.
    case passed
    /// Answered with this response; the rest of the request is discarded.
    case answered(HTTPPrebuiltResponse)
}

/// The early answer (issue #19): a server asks its responder once per request, as soon as the
/// request's method and path are known (its first regular field, or the end of its header block),
/// and a request answered there costs only nghttp2's parsing, the stream's entry and the
/// prebuilt response — no field conversion, ``HTTPRequest``, delegate or per-request allocation
/// of the application.
extension HTTP2ConnectionHandler {
    /// Asks the responder on the first call for `stream` (a server's request head); whether the
    /// request is answered early.
    @inline(__always)
    func answersEarly(_ stream: HTTP2Stream) -> Bool {
        switch stream.early {
        case .passed: return false
        case .answered: return true
        case .unasked: break
        }
        guard case .server(let responder) = self.role, let method = self.inboundHead.pseudo.method,
            let path = self.inboundHead.pseudo.path,
            let response = responder.earlyResponse(method: method, path: path, eventLoop: self.eventLoop)
        else {
            stream.early = .passed
            return false
        }
        stream.early = .answered(response)
        return true
    }

    /// Sends the early answer of `stream` (its head is complete). A request still sending its
    /// body by the next loop tick — after this answer has been flushed: a RST_STREAM submitted
    /// now would overtake the response's DATA in nghttp2's queue — is reset with `NO_ERROR`.
    func answerEarly(_ stream: HTTP2Stream) {
        guard case .answered(let response) = stream.early, self.session != nil else { return }
        stream.headSent = true
        stream.endRequested = true
        let withBody = response.body.readableBytes > 0
        if withBody { stream.outbound = response.body }
        // The echoed field after the prebuilt ones, its name and value in one buffer (nghttp2 copies
        // names and values on submit).
        let echoed = response.echo.map { echo in
            let value = stream.earlyEcho.flatMap { bytes in bytes.withUnsafeBufferPointer { echo.accepts($0) } ? bytes : nil }
            return (name: echo.nameBytes, value: value ?? Array(echo.generate().utf8))
        }
        var echoBytes = echoed.map { $0.name + $0.value } ?? []
        let submitted = echoBytes.withUnsafeMutableBufferPointer { bytes in
            var fields = Array(response.fields)
            if let echoed, let base = bytes.baseAddress {
                fields.append(
                    nghttp2_nv(
                        name: base, value: base + echoed.name.count, namelen: echoed.name.count,
                        valuelen: echoed.value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)))
            }
            return fields.withUnsafeBufferPointer { nv in
                self.submitResponse(nv: nv.baseAddress!, count: nv.count, on: stream, withBody: withBody)
            }
        }
        guard submitted else { return }
        self.answeredEarly.append(stream)
        guard self.answeredEarly.count == 1 else { return }
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.eventLoop.execute { loopBound.value.resetUnfinishedEarlyAnswers() }
    }

    /// Keeps the value of the early answer's echoed field when `name` is it.
    @inline(__always)
    func keepEarlyEcho(_ stream: HTTP2Stream, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        guard case .answered(let response) = stream.early, let echo = response.echo, name.count == echo.nameBytes.count,
            name.elementsEqual(echo.nameBytes)
        else { return }
        stream.earlyEcho = Array(value)
    }

    /// Resets the streams answered early whose request has not ended: the client should stop
    /// sending a body nobody reads.
    private func resetUnfinishedEarlyAnswers() {
        let streams = self.answeredEarly
        self.answeredEarly.removeAll(keepingCapacity: true)
        // Not while the answer's body waits for flow-control window: nghttp2 would send the
        // RST_STREAM ahead of it, and the client would get the 503's head without its body.
        for stream in streams where !stream.isClosed && !stream.receivedEnd && stream.bufferedOutboundBytes == 0 {
            stream.reset(.noError)
        }
    }
}
