public import FleetAgent
public import FleetHTTP2
public import FleetProtocol
import HTTPTypes
import Logging
public import NIOCore
import NIOPosix
public import NIOSSL
import Synchronization

/// A central OpenAI-compatible server for tests: a synthetic engine served by `AgentResponder`
/// on loopback (what `fleet-agent serve --listen` runs), HTTP/1.1 and h2c on one port.
public struct CentralServer: Sendable {
    public let channel: any Channel
    public let engine: SyntheticEngine
    /// Every request the server received, with its body.
    public let recorder: BodyRecordingResponder
    /// The connections it accepted, so ``stop()`` can close them as a dying process would.
    let connections: Connections

    final class Connections: Sendable {
        let channels = Mutex<[any Channel]>([])
    }

    /// Stops listening and closes every connection (``channel``'s `close` alone leaves accepted
    /// connections serving).
    public func stop() async {
        try? await self.channel.close()
        for connection in self.connections.channels.withLock({ $0 }) { try? await connection.close() }
    }

    /// Connections accepted so far.
    public var acceptedConnections: Int { self.connections.channels.withLock { $0.count } }

    /// Closes every accepted connection and keeps listening, as a server's idle timeout would.
    public func closeConnections() async {
        for connection in self.connections.channels.withLock({ $0 }) { try? await connection.close() }
    }

    /// How the server formats the JSON it sends.
    public enum JSONStyle: Sendable {
        /// Ours and OpenAI's: `{"a":1,"b":"c"}`.
        case compact
        /// Python's `json.dumps` defaults, as llama-cpp-python's server sends them: a space after
        /// every `:` and `,`, and non-ASCII escaped as `\uXXXX`.
        case python
    }

    /// Whether it serves TLS.
    public var https = false

    /// The base URL, `http://127.0.0.1:PORT/v1` (`https://` with TLS).
    public var baseURL: String { "\(self.https ? "https" : "http")://127.0.0.1:\(self.channel.localAddress!.port!)/v1" }

    /// Starts one; close ``channel`` when done.
    /// - Parameters:
    ///   - port: 0 for any free port; a given port to bring one back where it was (a restart).
    ///   - tls: a server context offering ALPN h2 and http/1.1: the server speaks TLS (`https://`).
    public static func start(
        hardware: HardwareClass = .ai5, slowdown: Double = 0.1, json: JSONStyle = .compact, port: Int = 0,
        tls: NIOSSLContext? = nil
    ) async throws -> CentralServer {
        let engine = SyntheticEngine(profile: .of(hardware), slowdown: slowdown)
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 100, link: .ethernet, slotsFree: 0), slots: 4096)
        let agent = AgentResponder(engine: engine, state: state, hello: nil, logger: Logger(label: "central"))
        let recorder = BodyRecordingResponder(json == .python ? PythonJSONResponder(inner: agent) : agent)
        let connections = Connections()
        let channel = try await HTTPServer.bind(
            host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton, responder: recorder,
            tls: tls, childInitializer: { child in connections.channels.withLock { $0.append(child) } })
        var server = CentralServer(channel: channel, engine: engine, recorder: recorder, connections: connections)
        server.https = tls != nil
        return server
    }
}

/// Serves `inner`'s answers with their JSON rewritten the way Python's `json.dumps` writes it.
struct PythonJSONResponder: HTTPServerResponder {
    let inner: any HTTPServerResponder

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        self.inner.stream(PythonJSONStream(inner: stream), didReceive: request, connection: connection)
    }

    /// `json` with `", "` and `": "` separators and non-ASCII escaped (`ensure_ascii`).
    static func dumps(_ json: Substring) -> String {
        var out = ""
        out.reserveCapacity(json.utf8.count + json.utf8.count / 4)
        var inString = false
        var escaped = false
        for scalar in json.unicodeScalars {
            if inString {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    inString = false
                }
                if scalar.value > 0x7F {
                    for unit in String(scalar).utf16 {
                        let hex = String(unit, radix: 16)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
                continue
            }
            out.unicodeScalars.append(scalar)
            switch scalar {
            case "\"": inString = true
            case ":", ",": out += " "
            default: break
            }
        }
        return out
    }
}

/// A stream whose body bytes are re-serialised on the way out.
///
/// Every SSE `data:` line and every JSON body is rewritten. The content length is dropped (the body grows), so HTTP/1.1 answers go chunked.
final class PythonJSONStream: HTTPStream {
    let inner: any HTTPStream
    init(inner: any HTTPStream) { self.inner = inner }

    var eventLoop: any EventLoop { self.inner.eventLoop }
    var isWritable: Bool { self.inner.isWritable }
    var bufferedOutboundBytes: Int { self.inner.bufferedOutboundBytes }
    var isClosed: Bool { self.inner.isClosed }

    func sendResponse(_ response: HTTPResponse, endStream: Bool) {
        var response = response
        response.headerFields[.contentLength] = nil
        self.inner.sendResponse(response, endStream: endStream)
    }

    func sendData(_ data: ByteBuffer, endStream: Bool) {
        let text = String(buffer: data)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            if line.hasPrefix("data: {") { return "data: " + PythonJSONResponder.dumps(line.dropFirst(6)) }
            if line.hasPrefix("{") || line.hasPrefix("[") { return PythonJSONResponder.dumps(line) }
            return String(line)
        }
        self.inner.sendData(ByteBuffer(string: lines.joined(separator: "\n")), endStream: endStream)
    }

    func sendEnd(trailers: HTTPFields?) { self.inner.sendEnd(trailers: trailers) }
    func reset(_ code: HTTP2ErrorCode) { self.inner.reset(code) }
    func consume(_ bytes: Int) { self.inner.consume(bytes) }
}
