public import NIOCore
import NIOPosix
public import NIOSSL

/// Dials HTTP/2 connections (prior knowledge, cleartext) for tests, benchmarks and tools.
public enum HTTP2Client {
    /// Connects and installs a handler in the given role.
    /// - Returns: a handle on the connection.
    /// - Parameters:
    ///   - tls: when given, TLS with ALPN `h2` (the context must offer it) towards `serverHostname`.
    ///   - delegate: connection events from the first byte on (the handler holds it weakly: keep it).
    ///   - socketHandlers: installs handlers nearest the socket, below TLS and HTTP/2, before the
    ///     connection is active (the load harness's link emulation and PROXY header); nil: none.
    public static func connect(
        host: String,
        port: Int,
        group: any EventLoopGroup,
        role: HTTP2ConnectionHandler.Role = .client,
        configuration: HTTP2Configuration = .defaults,
        tls: NIOSSLContext? = nil,
        serverHostname: String? = nil,
        delegate: (any HTTP2ConnectionDelegate & Sendable)? = nil,
        socketHandlers: (@Sendable (any Channel) throws -> Void)? = nil
    ) async throws -> HTTP2ConnectionHandle {
        try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(10))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try socketHandlers?(channel)
                    if let tls {
                        let name = serverHostname ?? (host.first?.isLetter == true ? host : nil)
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: name))
                    }
                    let handler = try HTTPServerPipeline.addHTTP2(
                        channel, role: role, configuration: configuration, httpProtocol: tls == nil ? "h2c" : "h2",
                        isTLS: tls != nil)
                    handler.delegate = delegate
                    return HTTP2ConnectionHandle(handler, channel: channel)
                }
            }
    }

    /// A client TLS context offering ALPN `h2`, trusting `caFile` (PEM) or the system's roots.
    /// - Parameters:
    ///   - certificateFile, privateKeyFile: a client certificate (PEM chain) and its key for mTLS (issue #20).
    public static func makeTLSContext(caFile: String?, certificateFile: String? = nil, privateKeyFile: String? = nil)
        throws -> NIOSSLContext
    {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = ["h2"]
        if let caFile { tls.trustRoots = .file(caFile) }
        if let certificateFile, let privateKeyFile {
            tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: privateKeyFile, format: .pem))
        }
        return try NIOSSLContext(configuration: tls)
    }
}
