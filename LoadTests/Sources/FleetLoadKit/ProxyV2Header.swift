package import NIOCore

/// The PROXY protocol v2 header an L4 load balancer puts before a client's bytes (haproxy's "The
/// PROXY protocol", section 2.2): the 12-byte signature, version 2 + command PROXY (0x21), TCP over
/// IPv4 (0x11), the address block's length (12) and the block — source and destination addresses,
/// then source and destination ports, big-endian. The harness sends one per connection when a
/// scenario says `clients.originVia: proxy-v2`, so its connections are per origin address.
package enum ProxyV2Header {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// The header for a TCP/IPv4 connection from `source` to `destination` (dotted quads); nil
    /// when either is not an IPv4 address.
    package static func encode(source: String, sourcePort: Int, destination: String, destinationPort: Int) -> [UInt8]? {
        guard let src = Self.octets(source), let dst = Self.octets(destination) else { return nil }
        var bytes = Self.signature
        bytes += [0x21, 0x11, 0x00, 12]
        bytes += src + dst
        bytes += [UInt8(sourcePort >> 8 & 0xFF), UInt8(sourcePort & 0xFF)]
        bytes += [UInt8(destinationPort >> 8 & 0xFF), UInt8(destinationPort & 0xFF)]
        return bytes
    }

    static func octets(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        let values = parts.compactMap { UInt8($0) }
        return values.count == 4 ? values : nil
    }

    /// Writes the header first thing when the connection becomes active, then gets out of the
    /// way. NIO succeeds the connect promise before it fires `channelActive`, so a client may
    /// write (an HTTP/1.1 request) before the header could go: such writes wait behind it.
    package final class Writer: ChannelDuplexHandler, RemovableChannelHandler {
        package typealias InboundIn = ByteBuffer
        package typealias OutboundIn = ByteBuffer
        let header: [UInt8]
        private var sent = false
        private var held: [(NIOAny, EventLoopPromise<Void>?)] = []

        package init(header: [UInt8]) { self.header = header }

        package func channelActive(context: ChannelHandlerContext) {
            context.write(NIOAny(context.channel.allocator.buffer(bytes: self.header)), promise: nil)
            for (data, promise) in self.held { context.write(data, promise: promise) }
            self.held = []
            self.sent = true
            context.flush()
            context.fireChannelActive()
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }

        package func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if self.sent { context.write(data, promise: promise) } else { self.held.append((data, promise)) }
        }

        package func flush(context: ChannelHandlerContext) {
            if self.sent { context.flush() }
        }
    }
}
