import FleetHTTP2
import FleetTesting
import Foundation
import NIOCore
import NIOPosix

/// The benchmark server: FleetHTTP2's public stream API serving ``TestResponder`` on one event
/// loop — the same API the gateway uses, no private fast path.
///
/// Usage: `fleet-h2bench PORT`
@main
struct FleetH2Bench {
    static func main() async throws {
        let port = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 8081
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let config = HTTP2Configuration(maxConcurrentStreams: 1024, idleTimeout: nil, stallTimeout: nil)
        let channel = try await HTTPServer.bind(
            host: "127.0.0.1", port: port, group: group, responder: TestResponder(), configuration: config)
        FileHandle.standardOutput.write(Data("listening \(channel.localAddress!.port!)\n".utf8))
        try await channel.closeFuture.get()
    }
}
