public import FleetHTTP2
public import FleetProtocol
public import HTTPTypes
public import NIOCore
import Synchronization

/// Where the gateway's control messages are delivered; the tunnel client installs the handler.
public final class ControlInbox: Sendable {
    private let handler = Mutex<(@Sendable (ControlMessage) -> Void)?>(nil)
    private let received = Mutex<[ControlMessage]>([])

    public init() {}

    /// Installs the handler that acts on each message.
    public func onMessage(_ body: @escaping @Sendable (ControlMessage) -> Void) {
        self.handler.withLock { $0 = body }
    }

    /// Messages received so far (the last 64).
    public var messages: [ControlMessage] { self.received.withLock { $0 } }

    func deliver(_ message: ControlMessage) {
        self.received.withLock {
            $0.append(message)
            if $0.count > 64 { $0.removeFirst() }
        }
        self.handler.withLock { $0 }?(message)
    }
}

/// Reads one control message (bounded), answers 204 or 400, and hands it to the inbox.
final class ControlMessageReader: HTTPStreamDelegate {
    let stream: any HTTPStream
    let inbox: ControlInbox
    var body: BodyAccumulator

    init(stream: any HTTPStream, inbox: ControlInbox) {
        self.stream = stream
        self.inbox = inbox
        self.body = BodyAccumulator(limit: ControlMessage.maxBytes)
    }

    func streamDidReceiveData(_ data: ByteBuffer) { _ = self.body.append(data, consumingOn: self.stream) }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        guard !self.body.exceeded,
            let message = try? JSON.decode(ControlMessage.self, from: self.body.buffer.readableBytesView),
            message.v == FleetStatus.version
        else {
            let error = APIError.invalidRequest("Not a control message of version \(FleetStatus.version).")
            return self.stream.sendResponse(
                status: .badRequest, contentType: "application/json", body: error.jsonBody())
        }
        self.stream.sendResponse(HTTPResponse(status: .noContent), endStream: true)
        self.inbox.deliver(message)
    }

    func streamDidClose(error: HTTPStreamError?) {}
}
