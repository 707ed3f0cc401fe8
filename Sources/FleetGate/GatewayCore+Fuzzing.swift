import CoreMetrics
import FleetHTTP2
package import FleetProtocol
package import HTTPTypes
import Logging
package import NIOCore

/// Seams for `LoadTests/fuzz` and the corpus replay test (issue #20): the request validator as
/// the client API handler runs it, without listeners or sockets.
extension GatewayCore {
    /// What a request that passed validation turned into.
    package struct AcceptedRequest: Sendable {
        /// The enforced privacy zone.
        package var zone: String
        package var model: String
        package var streaming: Bool
        /// Whether the dispatcher may continue it on another upstream mid-stream.
        package var continuable: Bool
        /// The body sent upstream.
        package var body: ByteBuffer
    }

    /// A core with the default configuration (the default region map, no GeoIP database, no API
    /// keys, no central capacity) that serves `models`, and no metrics or log output.
    package static func detached(models: [String], fleetSecret: String) throws -> GatewayCore {
        let core = try GatewayCore(
            configuration: GatewayConfiguration(fleetSecret: fleetSecret),
            credentials: try FleetCredentials(secret: fleetSecret),
            metrics: GatewayMetrics(factory: NOOPMetricsHandler.instance), httpClient: nil,
            logger: Logger(label: "fleetgate.detached", factory: { _ in SwiftLogNoOpLogHandler() }))
        core.rememberModels(models)
        return core
    }

    /// Validates a request for `path` (`/v1/chat/completions`, `/v1/completions` or
    /// `/v1/responses`) exactly as the client API handler does after reading its body.
    /// - Returns: the accepted request, or the error the client would be answered; nil for a path
    ///   that is not a completion API.
    package func validateRequest(
        path: String, head: HTTPRequest, peer: SocketAddress?, viaProxyProtocol: Bool = false, body: ByteBuffer
    ) -> Result<AcceptedRequest, APIError>? {
        guard let api = ClientAPI(rawValue: path) else { return nil }
        let connection = HTTPConnectionInfo(
            remoteAddress: peer, localAddress: nil, httpProtocol: "h2c", isTLS: false,
            viaProxyProtocol: viaProxyProtocol)
        do throws(APIError) {
            let request = try RequestValidator(core: self).validate(
                head: head, connection: connection, body: body, api: api)
            return .success(
                AcceptedRequest(
                    zone: request.zone, model: request.model, streaming: request.streaming,
                    continuable: request.continuable, body: request.body))
        } catch {
            return .failure(error)
        }
    }
}
