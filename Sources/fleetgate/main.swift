import NIOCore
import FleetHTTP2
import FleetTesting
import NIOPosix
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let ch = try await HTTPServer.bind(host: "127.0.0.1", port: Int(CommandLine.arguments.dropFirst().first ?? "8099")!, group: group, responder: TestResponder())
print("listening", ch.localAddress!)
try await ch.closeFuture.get()
