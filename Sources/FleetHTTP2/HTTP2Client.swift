public import NIOCore
import NIOPosix

/// Dials HTTP/2 connections (prior knowledge, cleartext) for tests, benchmarks and tools.
public enum HTTP2Client {
    /// Connects and installs a handler in the given role.
    /// - Returns: a handle on the connection.
    public static func connect(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        role: HTTP2ConnectionHandler.Role = .client,
        configuration: HTTP2Configuration = .defaults
    ) async throws -> HTTP2ConnectionHandle {
        try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handler = try HTTPServerPipeline.addHTTP2(channel, role: role, configuration: configuration)
                    return HTTP2ConnectionHandle(handler, channel: channel)
                }
            }
    }
}
