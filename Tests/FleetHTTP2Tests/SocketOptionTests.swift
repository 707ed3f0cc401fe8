import Glibc
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import FleetHTTP2

/// helper-92: `.socketOption(.tcp_nodelay)` is option 1 at `SOL_SOCKET`, which is `SO_DEBUG`, not
/// `TCP_NODELAY`: every accepted socket (and the central and tunnel clients') had `SO_DEBUG` set.
@Suite("Socket options")
struct SocketOptionTests {
    @Test("An accepted connection has TCP_NODELAY and not SO_DEBUG")
    func acceptedSocket() async throws {
        let seen = Mutex<(noDelay: SocketOptionValue, debug: SocketOptionValue)?>(nil)
        let configurator = HTTPServer.ChildChannelConfigurator { channel in
            let options = try #require(channel.syncOptions)
            let noDelay = try options.getOption(.tcpOption(.tcp_nodelay))
            let debug = try options.getOption(
                .socketOption(NIOBSDSocket.Option(rawValue: SO_DEBUG)))
            seen.withLock { $0 = (noDelay, debug) }
        }
        let server = try await HTTPServer.bootstrap(
            group: MultiThreadedEventLoopGroup.singleton, quiesce: nil, configurator: configurator
        ).bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(to: try #require(server.localAddress)).get()
        defer { client.close(promise: nil) }
        for _ in 0..<200 where seen.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        let options = try #require(seen.withLock { $0 })
        #expect(options.noDelay != 0)
        #expect(options.debug == 0)
    }
}
