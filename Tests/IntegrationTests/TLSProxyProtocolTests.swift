import FleetAgent
import FleetGate
import FleetHTTP2
import FleetTesting
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import Testing

/// Issue #18 row 1 on the TLS client port: the PROXY header precedes the TLS handshake, and is
/// read only from the configured balancers.
@Suite("PROXY protocol v2 on the TLS client port", .timeLimit(.minutes(2)))
struct TLSProxyProtocolTests {
    /// Writes a PROXY header the moment the connection is up, before TLS says anything.
    final class HeaderWriter: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = ByteBuffer
        let header: [UInt8]
        init(header: [UInt8]) { self.header = header }
        func channelActive(context: ChannelHandlerContext) {
            context.writeAndFlush(NIOAny(ByteBuffer(bytes: self.header)), promise: nil)
            context.fireChannelActive()
        }
    }

    /// Collects the decrypted bytes.
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = Mutex<[UInt8]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = self.unwrapInboundIn(data)
            self.bytes.withLock { $0 += buffer.readableBytesView }
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }

    @Test(
        "The header's source is the origin when the peer is a configured balancer; otherwise TLS fails",
        arguments: [("127.0.0.0/8", true), ("192.0.2.0/24", false)])
    func origin(balancers: String, honoured: Bool) async throws {
        let (cert, key, dir) = try await TLSTests.makeCertificate()
        defer { try? FileManager.default.removeItem(at: dir) }
        try await withFleet(configure: {
            $0.tls = .init(certificateChain: cert, privateKey: key)
            $0.tlsPort = 0
            $0.tlsProxyProtocolFrom = [balancers]
            $0.geoipDatabase = cityTestDatabase
        }) { fleet in
            try await fleet.startCar(CarSpec("eu-car", region: "eu-central", slowdown: 0.05))
            let us = try await fleet.startCar(CarSpec("us-car", region: "us-east", slowdown: 0.05))
            let port = try await #require(fleet.gateway.tlsListener).boundAddress.get().port!
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.certificateVerification = .none
            tls.applicationProtocols = ["http/1.1"]
            let context = try NIOSSLContext(configuration: tls)
            let collector = Collector()
            let header = ProxyProtocolIntegrationTests.header(ipv4: [216, 160, 83, 56])
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HeaderWriter(header: header))
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: context, serverHostname: nil))
                        try channel.pipeline.syncOperations.addHandler(collector)
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            try? await channel.writeAndFlush(ByteBuffer(bytes: ProxyProtocolIntegrationTests.request()))
            try await channel.closeFuture.get()
            let text = String(decoding: collector.bytes.withLock { $0 }, as: UTF8.self).lowercased()
            if honoured {
                #expect(text.hasPrefix("http/1.1 200"))
                #expect(text.contains("x-fleet-zone: us"))
            } else {
                #expect(text.isEmpty)
                #expect(us.car.state.jobLog.isEmpty)
            }
        }
    }
}
