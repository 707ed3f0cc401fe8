import FleetConfiguration
import FleetGate
import FleetTesting
import HTTPTypes
import Logging
import NIOPosix

/// A gateway read from the configuration file `file` (with the test fleet secret and token tunnels
/// from the environment), whose reloads read the file again — as `fleetgate serve --config FILE`.
func fileConfiguredGateway(_ file: String, label: String, logLevel: LogLevelControl? = nil) throws -> Gateway {
    let stack = try ConfigStack(
        program: .fleetgate, schema: GatewayConfiguration.schema, arguments: ["--config", file],
        environment: ["FLEETGATE_FLEET_SECRET": FleetFixture.testSecret, "FLEETGATE_TUNNEL_AUTH": "token"])
    let read: @Sendable () throws -> GatewayConfiguration = {
        try GatewayConfiguration.read(from: stack, again: true)  // as serve's reload
    }
    var logger = Logger(label: label)
    logger.logLevel = .critical
    return try Gateway(
        configuration: try read(), group: .singletonMultiThreadedEventLoopGroup, logger: logger, logLevel: logLevel,
        reloadSource: read)
}

extension RecordingClient {
    /// The status of a one-token `stream: false` completion sent with `key` as its bearer token.
    func completionStatus(key: String) async throws -> Int {
        var headers = HTTPFields()
        headers[.authorization] = "Bearer \(key)"
        let result = try await self.post(
            "/v1/chat/completions", json: chatBody(stream: false, maxTokens: 1), headers: headers
        ).collect()
        return result.response?.status.code ?? 0
    }
}
