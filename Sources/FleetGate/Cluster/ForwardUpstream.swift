import CoreMetrics
import FleetHTTP2
import FleetProtocol
import HTTPTypes
import NIOCore

/// A forwarded attempt (issue #21): the request sent over HTTP/2 to another replica's internal
/// listener, its answer relayed back through this replica like any other upstream's.
///
/// 1. The stream opens on the one connection this replica keeps to the target (``ClusterView``),
///    through the same code as a car's job stream (``CarUpstream``): per-stream flow control, so
///    a slow client slows only its own forwarded stream.
/// 2. The request carries the client's body with `stream: true` and usage asked for (the remote
///    replica answers as an OpenAI-compatible server, which the relay parses as it does central
///    capacity), the request id, trace context, `x-fleet-hop: 1` and the signed origin.
/// 3. The remote replica enforces the zone again; if it dies mid-stream the stream fails and the
///    dispatch state machine fails over as for a car (the client's connection stays here).
struct ForwardUpstream: Upstream {
    let stream: CarUpstream

    /// Opens the forwarded attempt.
    static func open<Relay: UpstreamEvents>(
        target: ClusterView.Target, view: ClusterView, route: String, body: ByteBuffer, request: ValidatedRequest,
        requestID: String, attempt: Int, relay: NIOLoopBound<Relay>
    ) -> ForwardUpstream {
        var head = HTTPRequest(method: .post, scheme: "http", authority: target.address, path: route)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.accept] = "text/event-stream"
        head.headerFields.append(.perMessage(.fleetRequestID, requestID))
        head.headerFields[.fleetHop] = "1"
        head.headerFields[.authorization] = request.authorization
        // Signed for this request alone (its id, an expiry), and a credential while it is valid.
        head.headerFields.append(
            .perMessage(.fleetForwardedOrigin, view.signedOrigin(request.origin, requestID: requestID)))
        if !request.traceParent.isEmpty { head.headerFields.append(.perMessage(.traceparent, request.traceParent)) }
        if let state = request.traceState { head.headerFields[.tracestate] = state }
        view.forwardedOut.increment()
        return ForwardUpstream(
            stream: CarUpstream.open(
                tunnel: target.connection, request: head, body: body, attempt: attempt, relay: relay))
    }

    func consume(_ bytes: Int) { self.stream.consume(bytes) }
    func cancel() { self.stream.cancel() }
}
