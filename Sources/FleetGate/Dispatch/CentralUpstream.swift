import FleetHTTP1Client
import FleetHTTP2
import FleetProtocol
import NIOCore

/// A stream from a central endpoint on the gateway's own HTTP/1.1 client (``CentralClients``),
/// behind the same ``Upstream`` interface as a car: the connection lives on the relay's event loop
/// and its ``CentralExchange`` calls the relay directly; ``consume(_:)`` gives back what the relay
/// passed on, so a slow client slows the central stream too (issue #19).
struct CentralUpstream: Upstream {
    let exchange: NIOLoopBound<CentralExchange>

    /// Starts `POST {base}/chat/completions` (or `/completions`) with `body` on `pool` (the relay's
    /// loop's), streaming — or, with `wholeAnswer`, asking for one JSON answer. Call on the relay's loop.
    static func open<Relay: UpstreamEvents>(
        pool: HTTP1ConnectionPool, path: String, body: ByteBuffer, requestID: String,
        trace: (parent: String, state: String?) = ("", nil), wholeAnswer: Bool = false,
        extra: [(name: String, value: String)] = [], attempt: Int, relay: NIOLoopBound<Relay>
    ) -> CentralUpstream {
        var headers: [(name: String, value: String)] = extra
        headers.reserveCapacity(3 + extra.count)
        headers.append((FleetHeader.requestID, requestID))
        // #17: W3C Trace Context.
        if !trace.parent.isEmpty { headers.append((TraceParent.header, trace.parent)) }
        if let state = trace.state { headers.append((TraceParent.stateHeader, state)) }
        let exchange = CentralExchange(
            relay: relay.value, attempt: attempt, pool: pool, path: path, body: body, headers: headers,
            accept: wholeAnswer ? "application/json" : "text/event-stream")
        exchange.start()
        return CentralUpstream(exchange: NIOLoopBound(exchange, eventLoop: relay.eventLoop))
    }

    func consume(_ bytes: Int) {
        if self.exchange.eventLoop.inEventLoop { return self.exchange.value.consume(bytes) }
        let exchange = self.exchange
        exchange.eventLoop.execute { exchange.value.consume(bytes) }
    }

    func cancel() {
        let exchange = self.exchange
        exchange.eventLoop.executeOrRun { exchange.value.cancel() }
    }
}
