public import FleetHTTP2
public import FleetProtocol
public import HTTPTypes
public import Logging
public import NIOCore

/// The agent's HTTP API, served on the tunnel it dialled (HTTP/2 server role) and, with
/// `fleet-agent serve`, on a plain listening port as an OpenAI-compatible server.
///
/// - `POST /v1/chat/completions`, `POST /v1/completions`: run a job on the engine; SSE or JSON.
/// - `GET /v1/models`: the engine's models.
/// - `GET /fleet/v1/status`: the status stream (hello, then state changes), when a hello is configured.
/// - `GET /healthz`.
public struct AgentResponder: HTTPServerResponder {
    /// The engine jobs run on.
    public let engine: any InferenceEngine
    /// Slots and telemetry.
    public let state: AgentState
    /// Builds the hello for the status stream; nil when this is not a tunnel.
    public let hello: (@Sendable () -> StatusMessage)?
    /// The largest request body accepted.
    public let maxBodyBytes: Int
    /// Where each job's record goes (`--job-log`), if anywhere.
    public let jobLog: JobLog?
    /// Receives the gateway's control messages (`POST /fleet/v1/control`).
    public let control: ControlInbox
    /// Messages for this tunnel's status stream only (issue #21: the primary flag moving here).
    public let notices: StatusNotices
    let logger: Logger

    public init(
        engine: any InferenceEngine, state: AgentState, hello: (@Sendable () -> StatusMessage)?,
        maxBodyBytes: Int = 1 << 20, jobLog: JobLog? = nil, logger: Logger
    ) {
        self.jobLog = jobLog
        self.control = ControlInbox()
        self.notices = StatusNotices()
        self.engine = engine
        self.state = state
        self.hello = hello
        self.maxBodyBytes = maxBodyBytes
        self.logger = logger
    }

    public func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        // Without its query (a split into an array cost ~8,600 instructions a request, issue #19).
        let path =
            request.path.map { path in path.utf8.firstIndex(of: UInt8(ascii: "?")).map { String(path[..<$0]) } ?? path }
            ?? "/"
        switch (request.method, path) {
        case (.post, "/v1/chat/completions"):
            return CompletionJobServer(responder: self, stream: stream, request: request, chat: true)
        case (.post, "/v1/completions"):
            return CompletionJobServer(responder: self, stream: stream, request: request, chat: false)
        case (.post, ControlMessage.path) where self.hello != nil:
            return ControlMessageReader(stream: stream, inbox: self.control)
        case (.get, FleetStatus.path) where self.hello != nil:
            return StatusStreamWriter(stream: stream, state: self.state, hello: self.hello!(), notices: self.notices)
        case (.get, "/v1/models"):
            let models = ModelList(
                data: self.engine.models.map { .init(id: $0.id, created: 0, ownedBy: "fleet-agent") })
            return FixedResponseDelegate(stream: stream, status: .ok, body: JSON.buffer(models))
        case (.get, "/healthz"):
            return FixedResponseDelegate(stream: stream, status: .ok, body: ByteBuffer(string: "{\"status\":\"ok\"}"))
        default:
            return FixedResponseDelegate(stream: stream, status: .notFound, body: APIError.notFound.jsonBody())
        }
    }
}

/// Writes the status stream: the hello, then every state or drain message, one JSON line each.
final class StatusStreamWriter: HTTPStreamDelegate {
    let stream: any HTTPStream
    let state: AgentState
    var subscription: Int?

    let notices: StatusNotices

    init(stream: any HTTPStream, state: AgentState, hello: StatusMessage, notices: StatusNotices) {
        self.stream = stream
        self.state = state
        self.notices = notices
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = FleetStatus.contentType
        stream.sendResponse(response, endStream: false)
        self.write(hello)
        let loopBound = NIOLoopBound(self, eventLoop: stream.eventLoop)
        let loop = stream.eventLoop
        self.subscription = state.subscribe { message in
            loop.executeOrRun { loopBound.value.write(message) }
        }
        notices.attach { message in loop.executeOrRun { loopBound.value.write(message) } }
    }

    func write(_ message: StatusMessage) {
        var line = JSON.buffer(message)
        line.writeStaticString("\n")
        // A drain is the last message: ending the stream lets the tunnel close once jobs finish.
        self.stream.sendData(line, endStream: message.type == .drain)
    }

    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {}
    func streamDidClose(error: HTTPStreamError?) {
        if let subscription { self.state.unsubscribe(subscription) }
        self.subscription = nil
        self.notices.attach(nil)
    }
}
