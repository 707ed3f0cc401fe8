import FleetHTTP2
import NIOCore
import NIOEmbedded

/// Target `proxy`: the input is the start of a connection from a load balancer that must begin with
/// a PROXY protocol v2 header. It is written — once whole and once in random pieces — into an
/// embedded channel holding the gateway's real `ProxyProtocolHandler`.
///
/// Invariants beyond "no crash":
/// - how the bytes are cut does not change the outcome;
/// - the connection is closed, or the header is accepted, or the input is a strict prefix of a
///   header that may still be valid (then nothing is forwarded);
/// - once accepted, exactly the bytes after the header (16 + its length field) reach the next
///   handler, and the source recorded for `PROXY` over TCP is the address and port in the block
///   (decoded here independently, by NIO from packed bytes).
enum ProxyFuzz {
    struct Outcome: Equatable {
        var closed: Bool
        var received: Bool
        var source: SocketAddress?
        var forwarded: [UInt8]
    }

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        let whole = Self.drive([bytes[...]])
        let split = Self.drive(Splits.pieces(of: bytes, maxPiece: 24))
        try check(whole == split, "cutting the bytes changed the outcome: whole \(whole), split \(split)")
        if whole.closed {
            try check(!whole.received && whole.forwarded.isEmpty, "a refused connection forwarded bytes")
            return
        }
        let length = bytes.count >= 16 ? Int(bytes[14]) << 8 | Int(bytes[15]) : 0
        guard whole.received else {
            try check(whole.forwarded.isEmpty, "bytes forwarded before the header was read")
            try check(
                bytes.count < 16 + length && bytes.prefix(12).elementsEqual(Self.signature.prefix(bytes.count)),
                "neither accepted nor refused, yet not a header prefix")
            return
        }
        try check(bytes.count >= 16 + length, "a header accepted before its block arrived")
        try check(whole.forwarded == Array(bytes[(16 + length)...]), "the bytes after the header were not forwarded as is")
        let command = bytes[12] & 0x0F
        let block = Array(bytes[16..<(16 + length)])
        let expected: SocketAddress?
        switch (command, bytes[13]) {
        case (0x1, 0x11) where block.count >= 12:
            expected = try? SocketAddress(
                packedIPAddress: ByteBuffer(bytes: block[0..<4]), port: Int(block[8]) << 8 | Int(block[9]))
        case (0x1, 0x21) where block.count >= 36:
            expected = try? SocketAddress(
                packedIPAddress: ByteBuffer(bytes: block[0..<16]), port: Int(block[32]) << 8 | Int(block[33]))
        default:
            expected = nil
        }
        try check(
            whole.source == expected, "recorded source \(String(describing: whole.source)), block says \(String(describing: expected))")
    }

    static func drive(_ pieces: [ArraySlice<UInt8>]) -> Outcome {
        let proxied = ProxiedAddress()
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(proxied: proxied))
            try channel.connect(to: SocketAddress(ipAddress: "192.0.2.10", port: 443)).wait()
        } catch {
            fatalError("Internal inconsistency: the embedded channel refused the handler: \(error)")
        }
        var forwarded: [UInt8] = []
        for piece in pieces where channel.isActive {
            try? channel.writeInbound(ByteBuffer(bytes: piece))
            while let out = try? channel.readInbound(as: ByteBuffer.self) { forwarded += out.readableBytesView }
        }
        return Outcome(closed: !channel.isActive, received: proxied.received, source: proxied.source, forwarded: forwarded)
    }
}
