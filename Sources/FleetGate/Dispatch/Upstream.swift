import FleetHTTP2
import FleetProtocol
import HTTPTypes
import NIOCore

/// An upstream failure, as the relay sees it.
struct UpstreamFailure: Error, Sendable {
    /// Whether another upstream may be tried (nothing reached the client yet is decided by the relay).
    var retryable: Bool
    /// A bounded label for metrics and logs.
    var label: String
}

/// Events an upstream delivers to its relay, always on the relay's event loop, tagged with the
/// attempt they belong to so that a replaced upstream's late events are ignored.
protocol UpstreamEvents: AnyObject, SendableMetatype {
    func upstream(_ attempt: Int, didReceiveStatus status: Int)
    /// A busy upstream (429, 503) said when to come back (``RetryAfter``), in seconds.
    func upstream(_ attempt: Int, isBusyFor seconds: Int)
    func upstream(_ attempt: Int, didReceive data: ByteBuffer)
    func upstreamDidEnd(_ attempt: Int)
    func upstream(_ attempt: Int, didFail failure: UpstreamFailure)
    /// The upstream said where it served (`x-fleet-region` of a replica's answer, issue #21).
    func upstream(_ attempt: Int, servedIn region: String)
    /// Whether the attempt's next bytes are wanted as soon as its upstream has them, before the rest of
    /// the same read (``upstream(_:didReceivePartOfRead:)``): while no token was committed.
    func upstreamWantsBytesAtOnce(_ attempt: Int) -> Bool
    /// Bytes of the attempt delivered before the rest of their read: more of it follows at once.
    func upstream(_ attempt: Int, didReceivePartOfRead data: ByteBuffer)
    /// Whether the attempt still reads its upstream's bytes (false once it finished, failed or was
    /// cancelled).
    func upstreamIsOpen(_ attempt: Int) -> Bool
}

extension UpstreamEvents {
    func upstream(_ attempt: Int, servedIn region: String) {}
    func upstream(_ attempt: Int, isBusyFor seconds: Int) {}
    func upstreamWantsBytesAtOnce(_ attempt: Int) -> Bool { false }
    func upstream(_ attempt: Int, didReceivePartOfRead data: ByteBuffer) { self.upstream(attempt, didReceive: data) }
    func upstreamIsOpen(_ attempt: Int) -> Bool { true }
}

/// The source a client stream pumps from: a car's tunnel stream or a central endpoint.
///
/// DESIGN.md, Contracts: the relay pumps from a *replaceable* upstream, so retry, hedging and
/// failover swap it without touching the client side.
protocol Upstream: Sendable {
    /// Gives `bytes` of flow-control credit back: the relay has passed them on.
    func consume(_ bytes: Int)
    /// Abandons the upstream (RST_STREAM CANCEL on a car, so its engine stops).
    func cancel()
}
