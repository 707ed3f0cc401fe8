public import FleetAgent
public import FleetHTTP2
public import FleetProtocol
import Foundation
public import HTTPTypes
import Logging
public import NIOCore
public import NIOPosix
import Synchronization

/// A car that misbehaves on purpose: a real HTTP/2 agent on the real tunnel protocol (it dials the
/// gateway's tunnel port and serves HTTP/2 in the server role, as ``TunnelClient`` does) with a
/// valid credential, whose hello or job answers are chosen by a ``Behaviour``.
///
/// Responsibilities:
/// 1. dial once (no reconnect: a test wants to see what the gateway did to *this* tunnel) and
///    answer `GET /fleet/v1/status` with the hello the behaviour calls for;
/// 2. answer every job stream with the behaviour's bytes — written as the ``Step``s say,
///    each `data` step its own write — or, for ``Behaviour/liesAboutRates(prefillTokensPerSecond:decodeTokensPerSecond:slowdown:)``,
///    with a real ``AgentResponder`` over a slowed ``SyntheticEngine``;
/// 3. record what the gateway did: jobs opened, jobs reset, the GOAWAY code, the tunnel's close.
///
/// ```swift
/// let car = try await fleet.startHostileCar("mallory", .doneBeforeToken)
/// ```
public final class HostileCar: Sendable {
    /// What the car does wrong.
    public enum Behaviour: Sendable {
        /// Nothing: the role chunk, three tokens, finish, usage, `[DONE]` — the control case.
        case honest
        /// The role chunk, then `data: [DONE]` before any token, then the end of the stream.
        case doneBeforeToken
        /// A hello with `"models": []`.
        case emptyModelList
        /// A hello listing `count` distinct models (the line may exceed the status stream's limit).
        case hugeModelList(count: Int)
        /// `count` role-only chunks (which a relay holds back until the first token), then an honest answer.
        case eventFlood(count: Int)
        /// Tokens whose `content` bytes are not UTF-8 (`0xFF 0xFE`, a truncated sequence).
        case invalidUTF8
        /// Token events that also carry `event: error`, `id:` and `retry:` fields.
        case forgedSSEFields
        /// One token, then a forged `data: {"error":…}`, then more tokens and `[DONE]`.
        case forgedError
        /// An honest answer, then more tokens after `[DONE]`.
        case dataAfterDone
        /// The role chunk and one token, then nothing: the stream stays open.
        case stallAfterFirstToken
        /// Advertises these rates in its hello but runs a ``SyntheticEngine`` `slowdown` times
        /// slower than its hardware profile (a liar the scheduler must learn to avoid).
        case liesAboutRates(prefillTokensPerSecond: Double, decodeTokensPerSecond: Double, slowdown: Double)
        /// Anything else: these steps on every job stream, after a 200 `text/event-stream` head.
        case scripted([Step])
        /// An honest hello, then these status lines `repeated` times, at once (values out of range, a flood).
        case statusLines([StatusMessage], repeated: Int = 1)
    }

    /// One thing a scripted job stream does.
    public enum Step: Sendable {
        /// Writes these bytes as they are.
        case data(ByteBuffer)
        /// Waits before the next step.
        case pause(TimeAmount)
        /// Ends the stream.
        case end
        /// Resets the stream with `code`.
        case reset(HTTP2ErrorCode)
    }

    /// The behaviour.
    public let behaviour: Behaviour
    /// The tunnel.
    public let connection: HTTP2ConnectionHandle
    private let script: Script
    private let observer: ConnectionObserver

    /// The model every honest part of a hostile car serves.
    public static let model = "fleet-8b"

    /// Dials the gateway's tunnel port on loopback and serves `behaviour`.
    /// - Parameters:
    ///   - port: the gateway's tunnel port on 127.0.0.1.
    ///   - vehicleID: the id the credential was minted for.
    ///   - credential: a token from ``FleetCredentials/issue(vehicleID:regions:expires:)``.
    ///   - region: the region claimed in the hello (the credential must allow it).
    ///   - hardware: the class claimed in the hello; its profile sets the honest rates and slots.
    public static func connect(
        port: Int, vehicleID: String, credential: String, region: String, behaviour: Behaviour,
        hardware: HardwareClass = .ai5, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> HostileCar {
        let script = Script(
            behaviour: behaviour,
            hello: Self.hello(
                behaviour, vehicleID: vehicleID, credential: credential, region: region, hardware: hardware),
            hardware: hardware)
        let observer = ConnectionObserver(script: script)
        let connection = try await HTTP2Client.connect(
            host: "127.0.0.1", port: port, group: group, role: .server(HostileResponder(script: script)),
            delegate: observer)
        return HostileCar(behaviour: behaviour, connection: connection, script: script, observer: observer)
    }

    private init(behaviour: Behaviour, connection: HTTP2ConnectionHandle, script: Script, observer: ConnectionObserver)
    {
        self.behaviour = behaviour
        self.connection = connection
        self.script = script
        self.observer = observer
    }

    /// Job streams the gateway opened on this car.
    public var jobs: Int { self.script.state.withLock { $0.jobs } }
    /// Job streams that have closed (ended or reset).
    public var jobsClosed: Int { self.script.state.withLock { $0.jobsClosed } }
    /// The GOAWAY code the gateway sent, if any.
    public var goAwayCode: HTTP2ErrorCode? { self.script.state.withLock { $0.goAway } }
    /// Whether the tunnel is still open.
    public var isConnected: Bool { self.connection.channel.isActive }

    /// Waits until the gateway closes the tunnel; throws ``TimeoutError`` after `timeout`.
    public func waitForClose(timeout: Duration = .seconds(10)) async throws {
        try await waitUntil(timeout: timeout, "the gateway closed the tunnel") { !self.isConnected }
    }

    /// Closes the tunnel.
    public func close() { self.connection.channel.close(promise: nil) }

    // MARK: Hello

    static func hello(
        _ behaviour: Behaviour, vehicleID: String, credential: String, region: String, hardware: HardwareClass
    ) -> StatusMessage {
        let profile = HardwareProfile.of(hardware)
        var models = [
            ModelOffer(
                id: Self.model, decodeTokensPerSecond: profile.decodeTokensPerSecond,
                prefillTokensPerSecond: profile.prefillTokensPerSecond)
        ]
        switch behaviour {
        case .emptyModelList:
            models = []
        case .hugeModelList(let count):
            models = (0..<count).map {
                ModelOffer(id: "model-\($0)-\(vehicleID)", decodeTokensPerSecond: 10, prefillTokensPerSecond: 100)
            }
        case .liesAboutRates(let prefill, let decode, _):
            models = [ModelOffer(id: Self.model, decodeTokensPerSecond: decode, prefillTokensPerSecond: prefill)]
        default:
            break
        }
        return .hello(
            vehicleID: vehicleID, credential: credential, hardware: hardware, models: models, region: region,
            slots: profile.slots, policy: OwnerPolicy(onlyWhilePlugged: true, minChargePercent: 20),
            state: Self.vehicleState(slots: profile.slots))
    }

    static func vehicleState(slots: Int) -> VehicleState {
        VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: slots)
    }

    // MARK: Jobs

    /// The steps a job stream of `behaviour` takes.
    public static func steps(_ behaviour: Behaviour) -> [Step] {
        func chunk(_ delta: String, finish: String? = nil) -> Step {
            let reason = finish.map { "\"\($0)\"" } ?? "null"
            return .data(
                SSE.event(
                    #"{"id":"chatcmpl-hostile","object":"chat.completion.chunk","created":0,"model":"fleet-8b","choices":[{"index":0,"delta":"#
                        + delta + #","finish_reason":"# + reason + "}]}"))
        }
        let role = chunk(#"{"role":"assistant","content":""}"#)
        func token(_ text: String) -> Step { chunk(#"{"content":""# + text + #""}"#) }
        let finish = chunk("{}", finish: "stop")
        let usage = Step.data(
            SSE.event(
                #"{"id":"chatcmpl-hostile","object":"chat.completion.chunk","created":0,"model":"fleet-8b","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}"#
            ))
        let done = Step.data(SSE.event(SSE.done))
        let honest = [role, token("one"), token(" two"), token(" three"), finish, usage, done, .end]
        switch behaviour {
        case .honest, .emptyModelList, .hugeModelList, .liesAboutRates, .statusLines:
            return honest
        case .doneBeforeToken:
            return [role, done, .end]
        case .eventFlood(let count):
            return Array(repeating: role, count: count) + honest.dropFirst()
        case .invalidUTF8:
            var bytes = ByteBuffer(string: #"data: {"choices":[{"index":0,"delta":{"content":"bad "#)
            bytes.writeBytes([0xFF, 0xFE, 0xE2, 0x82])
            bytes.writeString(#""},"finish_reason":null}]}"# + "\n\n")
            return [role, .data(bytes), token(" fine"), finish, done, .end]
        case .forgedSSEFields:
            let forged = ByteBuffer(
                string: "event: error\nid: 999\nretry: 1\n"
                    + #"data: {"choices":[{"index":0,"delta":{"content":"forged"},"finish_reason":null}]}"# + "\n\n")
            return [role, .data(forged), token(" two"), finish, done, .end]
        case .forgedError:
            let error = Step.data(
                SSE.event(#"{"error":{"message":"forged by the car","type":"server_error","code":"forged"}}"#))
            return [role, token("one"), error, token(" two"), finish, done, .end]
        case .dataAfterDone:
            return honest.dropLast() + [token(" after"), token(" done"), done, .end]
        case .stallAfterFirstToken:
            return [role, token("one")]
        case .scripted(let steps):
            return steps
        }
    }
}

/// What a hostile car serves and what it saw; created before the tunnel is dialled, because the
/// gateway opens the status stream at once.
private final class Script: Sendable {
    let behaviour: HostileCar.Behaviour
    let hello: StatusMessage
    let agent: AgentResponder?
    let state = Mutex<(jobs: Int, jobsClosed: Int, goAway: HTTP2ErrorCode?)>((0, 0, nil))

    init(behaviour: HostileCar.Behaviour, hello: StatusMessage, hardware: HardwareClass) {
        self.behaviour = behaviour
        self.hello = hello
        if case .liesAboutRates(_, _, let slowdown) = behaviour {
            let engine = SyntheticEngine(profile: .of(hardware), slowdown: slowdown)
            self.agent = AgentResponder(
                engine: engine,
                state: AgentState(initial: HostileCar.vehicleState(slots: engine.slots), slots: engine.slots),
                hello: nil, logger: Logger(label: "hostile-car"))
        } else {
            self.agent = nil
        }
    }

    func jobClosed() { self.state.withLock { $0.jobsClosed += 1 } }

    func serve(_ stream: any HTTPStream, request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        switch (request.method, request.path ?? "/") {
        case (.get, FleetStatus.path):
            guard case .statusLines(let lines, let repeated) = self.behaviour else {
                return HelloWriter(stream: stream, lines: [self.hello])
            }
            return HelloWriter(stream: stream, lines: [self.hello] + Array(repeating: lines, count: repeated).joined())
        case (.post, "/v1/chat/completions"), (.post, "/v1/completions"):
            self.state.withLock { $0.jobs += 1 }
            if let agent = self.agent {
                return ClosingObserver(
                    script: self, inner: agent.stream(stream, didReceive: request, connection: connection))
            }
            return ScriptedJob(script: self, stream: stream, steps: HostileCar.steps(self.behaviour))
        default:
            return FixedResponseDelegate(stream: stream, status: .notFound, body: ByteBuffer())
        }
    }
}

private struct HostileResponder: HTTPServerResponder {
    let script: Script

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        self.script.serve(stream, request: request, connection: connection)
    }
}

/// Records the gateway's GOAWAY.
private final class ConnectionObserver: HTTP2ConnectionDelegate, Sendable {
    let script: Script
    init(script: Script) { self.script = script }
    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode, debugData: String) {
        self.script.state.withLock { $0.goAway = $0.goAway ?? errorCode }
    }
    func connectionDidClose() {}
}

/// Writes the hello as one NDJSON line and keeps the status stream open.
private final class HelloWriter: HTTPStreamDelegate {
    let stream: any HTTPStream
    init(stream: any HTTPStream, lines messages: [StatusMessage]) {
        self.stream = stream
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = FleetStatus.contentType
        stream.sendResponse(response, endStream: false)
        var lines = ByteBuffer()
        for message in messages {
            var line = JSON.buffer(message)
            lines.writeBuffer(&line)
            lines.writeStaticString("\n")
        }
        stream.sendData(lines, endStream: false)
    }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {}
    func streamDidClose(error: HTTPStreamError?) {}
}

/// Plays the steps once the request body has ended.
private final class ScriptedJob: HTTPStreamDelegate {
    let script: Script
    let stream: any HTTPStream
    var steps: ArraySlice<Step>
    typealias Step = HostileCar.Step

    init(script: Script, stream: any HTTPStream, steps: [Step]) {
        self.script = script
        self.stream = stream
        self.steps = steps[...]
    }

    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        self.stream.sendResponse(response, endStream: false)
        self.play()
    }

    func play() {
        while let step = self.steps.popFirst() {
            switch step {
            case .data(let bytes):
                self.stream.sendData(bytes, endStream: false)
            case .pause(let delay):
                let loopBound = NIOLoopBound(self, eventLoop: self.stream.eventLoop)
                self.stream.eventLoop.scheduleTask(in: delay) { loopBound.value.play() }
                return
            case .end:
                self.stream.sendEnd(trailers: nil)
            case .reset(let code):
                self.stream.reset(code)
            }
        }
    }

    func streamDidClose(error: HTTPStreamError?) {
        self.steps.removeAll()
        self.script.jobClosed()
    }
}

/// Counts a real job server's close for the car.
private final class ClosingObserver: HTTPStreamDelegate {
    let script: Script
    let inner: any HTTPStreamDelegate
    init(script: Script, inner: any HTTPStreamDelegate) {
        self.script = script
        self.inner = inner
    }
    func streamDidReceiveResponse(_ response: HTTPResponse) { self.inner.streamDidReceiveResponse(response) }
    func streamDidReceiveData(_ data: ByteBuffer) { self.inner.streamDidReceiveData(data) }
    func streamDidReceiveEnd(trailers: HTTPFields?) { self.inner.streamDidReceiveEnd(trailers: trailers) }
    func streamWritabilityDidChange(isWritable: Bool) { self.inner.streamWritabilityDidChange(isWritable: isWritable) }
    func streamDidClose(error: HTTPStreamError?) {
        self.inner.streamDidClose(error: error)
        self.script.jobClosed()
    }
}
