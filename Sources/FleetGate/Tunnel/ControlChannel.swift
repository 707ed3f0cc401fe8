import FleetHTTP2
import FleetProtocol
import HTTPTypes
import NIOCore

/// Sends one control message to a car on its tunnel and ignores the answer (DESIGN.md, Contracts:
/// the car answers 204; what it answers changes nothing the gateway does next).
final class ControlChannel: HTTPStreamDelegate {
    /// Opens `POST /fleet/v1/control` with `message` on the tunnel; on the tunnel's event loop.
    static func send(_ message: ControlMessage, on handler: HTTP2ConnectionHandler) {
        var request = HTTPRequest(method: .post, scheme: "http", authority: "car", path: ControlMessage.path)
        request.headerFields[.contentType] = "application/json"
        guard let stream = try? handler.openStream(request, endStream: false, delegate: ControlChannel()) else {
            return
        }
        stream.sendData(JSON.buffer(message), endStream: true)
    }

    func streamDidReceiveData(_ data: ByteBuffer) {}
    func streamDidReceiveEnd(trailers: HTTPFields?) {}
    func streamDidClose(error: HTTPStreamError?) {}
}
