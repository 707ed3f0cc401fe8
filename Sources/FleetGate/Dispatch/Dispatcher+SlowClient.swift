import FleetHTTP2

/// A slow client does not hold its upstream (helper-85: a client reading one byte a stream every 20 s
/// held every car slot of the fleet, since a car's stream credit came back only as the client drained).
///
/// While the client's stream is not writable, the committed attempt's bytes still get their credit back
/// as they are passed on, so the car (or central) finishes the job at its own speed and its slot is
/// freed; the gateway holds the answer for the client, as Envoy's per-connection buffer does. It holds
/// at most `limits.maxBufferedAnswerBytesPerStream` a stream (about 5,000 tokens of chat chunks at the
/// 1 MiB default) and `limits.maxBufferedAnswerBytes` over all streams; past either, the credit waits
/// for the client again (``Attempt/unconsumed``), which is DESIGN's end-to-end flow control. The
/// stream's stall timeout still resets a client that makes no progress, which lets the held bytes go.
///
/// Both protocols: an HTTP/2 stream closes when its last frame is sent, an HTTP/1.1 one when its end is
/// written to the socket (``HTTP1ServerStreamHandler``), so the count ends when the bytes have left. (Before,
/// an HTTP/1.1 stream closed when its end was queued: the count ended while the bytes were still held, and
/// helper-90's slow HTTP/1.1 readers were not held for.)
extension Dispatcher {
    /// Whether `bytes` passed to a stream that is not writable may be held for the client, counted
    /// against both limits until the stream is writable again or closes.
    func holdForSlowClient(_ bytes: Int) -> Bool {
        let limits = self.core.liveConfiguration.configuration.limits
        guard self.heldForSlowClient + bytes <= limits.maxBufferedAnswerBytesPerStream,
            self.core.reserveAnswer(bytes, limit: limits.maxBufferedAnswerBytes)
        else { return false }
        self.heldForSlowClient += bytes
        return true
    }

    /// The answer's last bytes, queued after its upstream finished (for `/v1/responses` the whole text again,
    /// in four events): nothing is withheld any more, but a slow client's stream holds them as it held the
    /// rest, so they are counted, within the same bounds. Not once the stream has closed: its close
    /// released what was counted.
    func countLastBytes(_ bytes: Int) {
        guard bytes > 0, self.request.streaming, !self.stream.isWritable, !self.stream.isClosed else { return }
        _ = self.holdForSlowClient(bytes)
    }

    /// The client's stream drained to its low-water mark, or closed: what it held is no longer counted.
    func releaseHeldAnswer() {
        guard self.heldForSlowClient > 0 else { return }
        self.core.releaseAnswer(self.heldForSlowClient)
        self.heldForSlowClient = 0
    }
}
