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

    /// Sends the early answer of `stream` (its head is complete); the rest of its body is drained
    /// (``drain(_:)``).
    func answerEarly(_ stream: HTTP2Stream) {
        guard case .answered(let response) = stream.early, self.session != nil else { return }
        stream.headSent = true
        stream.endRequested = true
        let withBody = response.body.readableBytes > 0 && !stream.answersHead
        if withBody { stream.outbound = response.body }
        let submitted = response.withFields(echoing: stream.earlyEcho) { nv in
            self.submitResponse(nv: nv.baseAddress!, count: nv.count, on: stream, withBody: withBody)
        }
        if submitted { self.drain(stream) }
    }

    /// Keeps the value of the early answer's echoed field when `name` is it.
    @inline(__always)
    func keepEarlyEcho(_ stream: HTTP2Stream, name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) {
        guard case .answered(let response) = stream.early, response.echoes(name: name) else { return }
        stream.earlyEcho = Array(value)
    }

    /// Request-body bytes read and dropped after an answer before the stream is reset: the
    /// gateway's default body limit, so a client that sends its whole body first (httpx, nghttp,
    /// h2load) still reads the answer.
    static let drainLimit = 1 << 20
    /// How long a request answered before its end may take to end before it is reset.
    static let drainTimeout = TimeAmount.seconds(10)
    /// How often a stream past its drain deadline whose answer still waits for window is looked at.
    static let drainRecheck = TimeAmount.seconds(1)

    /// Drains the request of `stream`, answered before its end: the rest of its body is read and
    /// dropped, its stream window given back, and the stream is reset with `NO_ERROR` (RFC 9113
    /// §8.1) only past ``drainLimit`` bytes or ``drainTimeout``. A reset at once loses the answer
    /// of a client still sending: curl 7.88 fails with error 92 without showing it, httpx waits
    /// for window until its timeout.
    func drain(_ stream: HTTP2Stream) {
        guard stream.drain == nil, !stream.receivedEnd else { return }
        // The loop's clock, not coarseNow: a drain started from a timer (the 408) on a quiet
        // connection would otherwise get a deadline in the past.
        let deadline = self.eventLoop.now + Self.drainTimeout
        stream.drain = (Self.drainLimit, deadline)
        if self.drainSweep == nil { self.scheduleDrainSweep(at: deadline) }
    }

    /// `count` bytes of a draining stream's body arrived: dropped, and their window given back
    /// while under the limit.
    func drained(_ count: Int, of stream: HTTP2Stream) {
        stream.drain!.left -= count
        if stream.drain!.left >= 0 {
            stream.consume(count)
        } else {
            self.stopDraining(stream)
        }
    }

    /// Resets a drained stream whose request has not ended, with `NO_ERROR`: the client should
    /// stop sending a body nobody reads. Not while the answer's body waits for flow-control
    /// window: nghttp2 would send the RST_STREAM ahead of it, and the client would get the head
    /// without its body (the stall timeout ends such a stream).
    private func stopDraining(_ stream: HTTP2Stream) {
        guard !stream.isClosed, !stream.receivedEnd, stream.delegateErrorOverride == nil,  // not reset yet
            stream.bufferedOutboundBytes == 0
        else { return }
        stream.reset(.noError)
    }

    private func scheduleDrainSweep(at deadline: NIODeadline) {
        let loopBound = NIOLoopBound(self, eventLoop: self.eventLoop)
        self.drainSweep = self.eventLoop.scheduleTask(deadline: deadline) { loopBound.value.sweepDrains() }
    }

    /// Resets the draining streams past their deadline; runs again for the next one, if any.
    private func sweepDrains() {
        self.drainSweep = nil
        let now = self.eventLoop.now
        var next: NIODeadline?
        for stream in self.streams.all {
            guard let drain = stream.drain, !stream.receivedEnd else { continue }
            if drain.deadline <= now {
                self.stopDraining(stream)
                // Still open (its answer waits for window): looked at again, or it drains for good.
                if !stream.isClosed, stream.delegateErrorOverride == nil {
                    next = min(next ?? now + Self.drainRecheck, now + Self.drainRecheck)
                }
            } else {
                next = min(next ?? drain.deadline, drain.deadline)
            }
        }
        if let next { self.scheduleDrainSweep(at: next) }
    }
}
