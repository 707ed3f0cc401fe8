public import FleetHTTP2
import Foundation
public import HTTPTypes
public import NIOCore
import NIOPosix
import Synchronization

/// One event on a recorded stream.
public enum RecordedEvent: Sendable {
    case response(HTTPResponse)
    case data(ByteBuffer)
    case end(HTTPFields?)
    case closed(HTTPStreamError?)
}

/// An HTTP/2 client stream that records what arrives, for assertions, with manual flow control:
/// in ``consume`` mode `.manual` no window is returned until ``consumeReceived()`` is called,
/// so a test can play a client that does not read.
public final class RecordingStream: Sendable {
    public enum ConsumeMode: Sendable { case automatic, manual }

    public let events: AsyncStream<RecordedEvent>
    let continuation: AsyncStream<RecordedEvent>.Continuation
    let state = Mutex<(stream: HTTP2Stream?, unconsumed: Int, received: Int, bytes: [UInt8])>((nil, 0, 0, []))
    let mode: ConsumeMode
    let loop: any EventLoop
    let streamBox: NIOLoopBoundBox<HTTP2Stream?>

    init(mode: ConsumeMode, loop: any EventLoop) {
        (self.events, self.continuation) = AsyncStream.makeStream(of: RecordedEvent.self)
        self.mode = mode
        self.loop = loop
        self.streamBox = .makeEmptyBox(eventLoop: loop)
    }

    /// Body bytes received so far.
    public var receivedBytes: Int { self.state.withLock { $0.received } }

    /// The body received so far.
    public var body: [UInt8] { self.state.withLock { $0.bytes } }

    /// Returns window for everything received (manual mode).
    public func consumeReceived() {
        let box = self.streamBox
        let n = self.state.withLock { s -> Int in
            defer { s.unconsumed = 0 }
            return s.unconsumed
        }
        self.loop.execute { box.value?.consume(n) }
    }

    /// Switches to reading everything from now on.
    public func resumeReading() {
        self.state.withLock { $0.unconsumed = 0 }
        let box = self.streamBox
        let delegateBox = self
        self.loop.execute {
            delegateBox.autoConsumeOnLoop = true
            box.value?.consume(Int(Int32.max) / 2)
        }
    }

    nonisolated(unsafe) var autoConsumeOnLoop = false

    /// Sends more of the request body (after ``RecordingClient/send(_:body:endStream:mode:)`` left it open).
    public func send(_ data: ByteBuffer, endStream: Bool) {
        let box = self.streamBox
        self.loop.execute { box.value?.sendData(data, endStream: endStream) }
    }

    /// Resets the stream (the client goes away).
    public func reset() {
        let box = self.streamBox
        self.loop.execute { box.value?.reset(.cancel) }
    }

    /// Ends ``events`` after `timeout` unless the stream closed before: it is reset, ``events``
    /// finishes (whatever the connection does) and a line goes to standard error. Bounds a test's
    /// own `for await` over ``events`` as ``collect(timeout:)`` bounds itself; cancel the returned
    /// task once the loop is done.
    public func bound(_ timeout: Duration = .seconds(120)) -> Task<Void, Never> {
        Task { [self] in
            do { try await Task.sleep(for: timeout) } catch { return }
            FileHandle.standardError.write(Data("RecordingStream: no end after \(timeout); the stream is reset\n".utf8))
            // Finished first: the reset's own close is not an event the test sees.
            self.continuation.finish()
            self.reset()
        }
    }
}

final class RecordingDelegate: HTTPStreamDelegate {
    let recording: RecordingStream
    init(recording: RecordingStream) { self.recording = recording }

    func streamDidReceiveResponse(_ response: HTTPResponse) { self.recording.continuation.yield(.response(response)) }
    func streamDidReceiveData(_ data: ByteBuffer) {
        self.recording.state.withLock {
            $0.received += data.readableBytes
            $0.bytes.append(contentsOf: data.readableBytesView)
        }
        if self.recording.mode == .automatic || self.recording.autoConsumeOnLoop {
            self.recording.streamBox.value?.consume(data.readableBytes)
        } else {
            self.recording.state.withLock { $0.unconsumed += data.readableBytes }
        }
        self.recording.continuation.yield(.data(data))
    }
    func streamDidReceiveEnd(trailers: HTTPFields?) { self.recording.continuation.yield(.end(trailers)) }
    func streamDidClose(error: HTTPStreamError?) {
        self.recording.continuation.yield(.closed(error))
        self.recording.continuation.finish()
    }
}

/// An HTTP/2 (h2c) client connection for tests.
public struct RecordingClient: Sendable {
    public let connection: HTTP2ConnectionHandle

    /// Wraps an existing client-role connection.
    public init(connection: HTTP2ConnectionHandle) { self.connection = connection }

    /// Connects to `127.0.0.1:port` with the given stream window.
    /// - Parameter maxResetsPerSecond: RST_STREAM frames accepted from the server per second before
    ///   the client gives up on the connection (raise it for tests that expect many).
    public static func connect(port: Int, initialWindow: Int = 65_535, maxResetsPerSecond: Int = 200) async throws
        -> RecordingClient
    {
        let config = HTTP2Configuration(
            initialStreamWindowSize: initialWindow, connectionWindowSize: 1 << 24, idleTimeout: nil,
            maxResetsPerSecond: maxResetsPerSecond)
        let connection = try await HTTP2Client.connect(
            host: "127.0.0.1", port: port, group: MultiThreadedEventLoopGroup.singleton, configuration: config)
        return RecordingClient(connection: connection)
    }

    /// Sends a request with a body and returns its recording.
    /// - Parameter endStream: false to leave the body open (continue with ``RecordingStream/send(_:endStream:)``).
    public func send(
        _ request: HTTPRequest, body: ByteBuffer?, endStream: Bool = true,
        mode: RecordingStream.ConsumeMode = .automatic
    ) async throws -> RecordingStream {
        let recording = RecordingStream(mode: mode, loop: self.connection.eventLoop)
        let handle = self.connection
        try await handle.eventLoop.submit {
            let stream = try handle.onLoop.openStream(
                request, endStream: body == nil && endStream, delegate: RecordingDelegate(recording: recording))
            recording.streamBox.value = stream
            if let body { stream.sendData(body, endStream: endStream) }
        }.get()
        return recording
    }

    /// A JSON POST to `path`.
    public func post(
        _ path: String, json: String, headers: HTTPFields = [:], mode: RecordingStream.ConsumeMode = .automatic
    )
        async throws -> RecordingStream
    {
        var request = HTTPRequest(method: .post, scheme: "http", authority: "127.0.0.1", path: path)
        request.headerFields = headers
        request.headerFields[.contentType] = "application/json"
        return try await self.send(request, body: ByteBuffer(string: json), mode: mode)
    }

    public func close() {
        self.connection.channel.close(promise: nil)
    }
}

extension RecordingStream {
    /// What ``collect(timeout:)`` returns.
    public typealias Collected = (response: HTTPResponse?, body: String, error: HTTPStreamError?, ended: Bool)

    /// Waits for the whole exchange: the response head, the body, and how it ended.
    ///
    /// A stream that has not ended after `timeout` is reset and returned as it is (`ended` false, no
    /// error), with a line on standard error: a gateway that never ends a stream fails its test by
    /// name instead of hanging the run until CI's own limit (CI of 353c632 timed out at 5,400 s).
    public func collect(timeout: Duration = .seconds(120)) async -> Collected {
        let bound = self.bound(timeout)
        var (response, error, ended): (HTTPResponse?, HTTPStreamError?, Bool) = (nil, nil, false)
        for await event in self.events {
            switch event {
            case .response(let head): response = head
            case .data: break
            case .end: ended = true
            case .closed(let closed): error = closed
            }
        }
        bound.cancel()
        if Task.isCancelled && !ended { self.reset() }  // the test's time limit: its server may go on
        return (response, String(decoding: self.body, as: UTF8.self), error, ended)
    }
}
