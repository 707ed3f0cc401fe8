public import NIOCore

/// The client address a PROXY protocol header carried, shared by the handlers of one connection.
public final class ProxiedAddress {
    /// The original source, once the header has been read; nil for `LOCAL` (health checks).
    public internal(set) var source: SocketAddress?
    /// Whether a PROXY header was read on this connection (PROXY or LOCAL).
    public internal(set) var received = false
    package init() {}
}

/// Reads a PROXY protocol v2 header (the binary form L4 load balancers send) and passes the rest on.
///
/// Responsibilities:
/// 1. require the 12-byte v2 signature first — a connection without it is closed (when the
///    listener expects PROXY protocol, a direct client is a misconfiguration or a spoof);
/// 2. bound the header (at most 16 + 1,024 bytes) and reject malformed ones;
/// 3. record the source address of `PROXY` over TCP/IPv4 or TCP/IPv6 in ``ProxiedAddress``;
///    `LOCAL` (the balancer's own health checks) keeps the socket peer;
/// 4. remove itself and forward whatever followed the header.
///
/// Spec: haproxy's "The PROXY protocol", section 2.2.
package final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = ByteBuffer
    package typealias InboundOut = ByteBuffer

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    static let maxAddressBlock = 1_024

    let proxied: ProxiedAddress
    private var buffered = ByteBuffer()

    /// Test access to the buffer.
    var bufferedForTesting: ByteBuffer {
        get { self.buffered }
        set { self.buffered = newValue }
    }

    /// A handler that records what it reads in `proxied`.
    package init(proxied: ProxiedAddress) { self.proxied = proxied }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        self.buffered.writeBuffer(&incoming)
        switch self.parse() {
        case .needMore:
            return
        case .invalid:
            context.close(promise: nil)
        case .done(let source, let consumed):
            self.proxied.source = source
            self.proxied.received = true
            self.buffered.moveReaderIndex(forwardBy: consumed)
            let rest = self.buffered
            self.buffered = ByteBuffer()
            // Forward first: a removed handler's context no longer reaches the next handler.
            if rest.readableBytes > 0 {
                context.fireChannelRead(NIOAny(rest))
                context.fireChannelReadComplete()
            }
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    enum ParseResult: Equatable {
        case needMore
        case invalid
        case done(SocketAddress?, consumed: Int)
    }

    /// Parses the buffered bytes.
    func parse() -> ParseResult {
        let bytes = self.buffered.readableBytesView
        let prefix = min(bytes.count, 12)
        guard bytes.prefix(prefix).elementsEqual(Self.signature.prefix(prefix)) else { return .invalid }
        guard bytes.count >= 16 else { return .needMore }
        let start = bytes.startIndex
        let versionCommand = bytes[start + 12]
        let family = bytes[start + 13]
        let length = Int(bytes[start + 14]) << 8 | Int(bytes[start + 15])
        guard versionCommand >> 4 == 2, length <= Self.maxAddressBlock else { return .invalid }
        guard bytes.count >= 16 + length else { return .needMore }
        let block = Array(bytes[(start + 16)..<(start + 16 + length)])
        switch versionCommand & 0x0F {
        case 0x0:  // LOCAL: the proxy speaks for itself
            return .done(nil, consumed: 16 + length)
        case 0x1:  // PROXY
            switch family {
            case 0x11:  // TCP over IPv4
                guard block.count >= 12 else { return .invalid }
                let ip = block[0..<4].map(String.init).joined(separator: ".")
                let port = Int(block[8]) << 8 | Int(block[9])
                return .done(try? SocketAddress(ipAddress: ip, port: port), consumed: 16 + length)
            case 0x21:  // TCP over IPv6
                guard block.count >= 36 else { return .invalid }
                let ip = stride(from: 0, to: 16, by: 2).map {
                    String(UInt16(block[$0]) << 8 | UInt16(block[$0 + 1]), radix: 16)
                }
                .joined(separator: ":")
                let port = Int(block[32]) << 8 | Int(block[33])
                return .done(try? SocketAddress(ipAddress: ip, port: port), consumed: 16 + length)
            default:  // UNSPEC, UDP, UNIX: keep the socket peer
                return .done(nil, consumed: 16 + length)
            }
        default:
            return .invalid
        }
    }
}
