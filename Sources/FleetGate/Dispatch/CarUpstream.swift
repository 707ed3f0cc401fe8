import FleetHTTP2
import FleetProtocol
import HTTPTypes
import NIOCore

/// A job stream on a car's tunnel. Opens on the tunnel's event loop and forwards every event to
/// the relay's loop.
struct CarUpstream: Upstream {
    let tunnel: HTTP2ConnectionHandle
    let stream: NIOLoopBoundBox<HTTP2Stream?>

    /// Opens `POST path` with `body` on the car's tunnel.
    static func open<Relay: UpstreamEvents>(
        tunnel: HTTP2ConnectionHandle, request: HTTPRequest, body: ByteBuffer, attempt: Int,
        relay: NIOLoopBound<Relay>
    ) -> CarUpstream {
        let box = NIOLoopBoundBox<HTTP2Stream?>.makeEmptyBox(eventLoop: tunnel.eventLoop)
        tunnel.execute { handler in
            let forwarder = CarStreamForwarder(relay: relay, attempt: attempt)
            do {
                let stream = try handler.openStream(request, endStream: false, delegate: forwarder)
                stream.sendData(body, endStream: true)
                (handler.delegate as? CarSession)?.jobStarted()
                box.value = stream
                forwarder.stream = stream
            } catch {
                forwarder.deliver {
                    $0.upstream(attempt, didFail: UpstreamFailure(retryable: true, label: "tunnel_closing"))
                }
            }
        }
        return CarUpstream(tunnel: tunnel, stream: box)
    }

    func consume(_ bytes: Int) {
        let box = self.stream
        if self.tunnel.eventLoop.inEventLoop {
            box.value?.consume(bytes)
            return
        }
        self.tunnel.eventLoop.execute { box.value?.consume(bytes) }
    }

    func cancel() {
        let box = self.stream
        self.tunnel.eventLoop.executeOrRun { box.value?.reset(.cancel) }
    }

}

/// The car-side delegate: runs on the tunnel's loop and hops each event to the relay's loop.
private final class CarStreamForwarder<Relay: UpstreamEvents>: HTTPStreamDelegate {
    let relay: NIOLoopBound<Relay>
    let attempt: Int
    var stream: HTTP2Stream?
    var ended = false

    init(relay: NIOLoopBound<Relay>, attempt: Int) {
        self.relay = relay
        self.attempt = attempt
    }

    func deliver(_ body: @escaping @Sendable (Relay) -> Void) {
        let relay = self.relay
        relay.eventLoop.executeOrRun { body(relay.value) }
    }

    func streamDidReceiveResponse(_ response: HTTPResponse) {
        let attempt = self.attempt, status = response.status.code
        // cluster (#21): a forwarded attempt's replica says where it served (a car's is ignored).
        // Only a region-like name: it reaches the audit line and headers as it is, and a space in it
        // would add fields to that line (a review's nit: the peer is trusted, the bytes need not be).
        if let region = response.headerFields[.fleetRegion], VehicleIdentity.isValidName(region) {
            self.deliver { $0.upstream(attempt, servedIn: region) }
        }
        self.deliver { $0.upstream(attempt, didReceiveStatus: status) }
        // cluster (#21): a busy replica's Retry-After reaches the client's 503 (a car's agent sends none).
        if let seconds = RetryAfter.seconds(ofBusy: response) {
            self.deliver { $0.upstream(attempt, isBusyFor: seconds) }
        }
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        // The per-token path: a direct call when the relay shares this loop (no closure to allocate).
        if self.relay.eventLoop.inEventLoop {
            self.relay.value.upstream(self.attempt, didReceive: data)
            return
        }
        let attempt = self.attempt
        self.deliver { $0.upstream(attempt, didReceive: data) }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.ended = true
        let attempt = self.attempt
        self.deliver { $0.upstreamDidEnd(attempt) }
    }

    func streamDidClose(error: HTTPStreamError?) {
        guard let error, !self.ended else { return }
        let attempt = self.attempt
        // REFUSED_STREAM (no free slot) and a GOAWAY'd stream were never processed: safe to retry.
        let failure = UpstreamFailure(
            retryable: true,
            label: error.code == .refusedStream ? "refused" : (error.byPeer ? "car_reset" : "cancelled"))
        self.deliver { $0.upstream(attempt, didFail: failure) }
    }
}
