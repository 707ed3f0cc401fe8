import FleetHTTP2
import FleetProtocol
import FleetScheduler
import HTTPTypes
import NIOCore
import Prometheus

/// The admin port (loopback by default): health, readiness, Prometheus metrics, the fleet.
///
/// - `GET /healthz`: the process runs.
/// - `GET /readyz`: 200 once every listener is bound, 503 before and while shutting down.
/// - `GET /metrics`: Prometheus text format.
/// - `GET /admin/cars`: connected cars by pseudonym (never the raw vehicle id).
struct AdminResponder: HTTPServerResponder {
    let core: GatewayCore
    let prometheus: PrometheusCollectorRegistry
    let readiness: Readiness

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        let path = request.path ?? "/"
        switch path {
        case "/healthz":
            return RespondAtEnd(stream: stream, status: .ok, body: ByteBuffer(string: "{\"status\":\"ok\"}"))
        case "/readyz":
            let ready = self.readiness.isReady
            return RespondAtEnd(
                stream: stream, status: ready ? .ok : .serviceUnavailable,
                body: ByteBuffer(string: "{\"ready\":\(ready),\"cars\":\(self.core.tunnels.count)}"))
        case "/metrics":
            return RespondAtEnd(
                stream: stream, status: .ok, body: ByteBuffer(bytes: self.prometheus.emitToBuffer()),
                contentType: "text/plain; version=0.0.4")
        case "/admin/cars":
            let cars = self.core.registry.all().map { car in
                CarView(vehicle: car.descriptor.pseudonym, region: car.descriptor.region, zone: car.descriptor.zone,
                        hardware: car.descriptor.hardware.rawValue, slots: car.descriptor.slots, inFlight: car.inFlight,
                        pluggedIn: car.state.pluggedIn, chargePercent: car.state.chargePercent,
                        rttMs: car.rttMilliseconds, draining: car.draining)
            }
            return RespondAtEnd(stream: stream, status: .ok, body: JSON.buffer(cars))
        default:
            return RespondAtEnd(stream: stream, status: .notFound, body: JSON.buffer(APIError.notFound.body))
        }
    }

    struct CarView: Encodable {
        var vehicle, region, zone, hardware: String
        var slots, inFlight: Int
        var pluggedIn: Bool
        var chargePercent: Int
        var rttMs: Double?
        var draining: Bool
    }
}
