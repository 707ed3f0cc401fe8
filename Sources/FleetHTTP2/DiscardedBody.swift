import HTTPTypes
package import NIOCore

/// A request body nobody reads (a fixed answer, an admin request): its window is given back as it
/// arrives, and past 1 MiB the stream is reset with `CANCEL`.
package struct DiscardedBody: Sendable {
    /// The bytes discarded before the stream is reset.
    package static let limit = 1 << 20
    private var received = 0

    package init() {}

    /// Discards `data`, which arrived on `stream`.
    package mutating func discard(_ data: ByteBuffer, on stream: any HTTPStream) {
        stream.consume(data.readableBytes)
        self.received += data.readableBytes
        if self.received > Self.limit { stream.reset(.cancel) }
    }
}
