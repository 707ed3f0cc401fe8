public import FleetHTTP2
public import HTTPTypes
public import NIOCore

/// A small responder for engine tests and the HTTP/2 benchmark, written on the public stream API.
///
/// - `GET /` and `GET /index.html`: `Hello, world\n` (the bytes `nghttpd` serves in the benchmark).
/// - `GET /sse?n=N`: N SSE events of about 23 bytes, each written as its own DATA frame.
/// - `POST /echo`: echoes the body, consuming it as it is written back.
/// - `GET /stream?bytes=N`: N bytes in 16 KiB pieces, pausing on backpressure.
/// - `GET /trailers`: a body, then trailers `x-checksum: 42`.
/// - `POST /refuse`: 401 on the request head, before its body (``FixedResponseDelegate``'s `respondNow`).
public struct TestResponder: HTTPServerResponder {
    public init() {}

    public func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        let path = request.path ?? "/"
        if path == "/" || path == "/index.html" { return Hello(stream: stream) }
        let n = path.split(separator: "?", maxSplits: 1).dropFirst().first.flatMap { query in
            query.split(separator: "&").compactMap { pair -> Int? in
                let kv = pair.split(separator: "=")
                return kv.count == 2 && (kv[0] == "n" || kv[0] == "bytes") ? Int(kv[1]) : nil
            }.first
        }
        if path.hasPrefix("/sse") {
            return SSEWriter(stream: stream, count: n ?? 100)
        }
        if path.hasPrefix("/echo") {
            return Echo(stream: stream)
        }
        if path.hasPrefix("/trailers") {
            return WithTrailers(stream: stream)
        }
        if path.hasPrefix("/refuse") {
            return FixedResponseDelegate(
                stream: stream, status: .unauthorized, body: ByteBuffer(string: #"{"error":"refused"}"#),
                respondNow: true)
        }
        if path.hasPrefix("/stream") {
            return BulkWriter(stream: stream, remaining: n ?? 1 << 20)
        }
        return Hello(stream: stream)
    }
}

final class Hello: HTTPStreamDelegate {
    static let body = ByteBuffer(string: "Hello, world\n")
    let stream: any HTTPStream
    init(stream: any HTTPStream) { self.stream = stream }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    static let response: HTTPResponse = {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/html"
        response.headerFields[.contentLength] = "13"
        return response
    }()
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.stream.sendResponse(Self.response, endStream: false)
        self.stream.sendData(Self.body, endStream: true)
    }
    func streamDidClose(error: HTTPStreamError?) {}
}

final class SSEWriter: HTTPStreamDelegate {
    static let event = ByteBuffer(string: "data: {\"token\":\"word\"}\n\n")
    let stream: any HTTPStream
    let count: Int
    init(stream: any HTTPStream, count: Int) {
        self.stream = stream
        self.count = count
    }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        self.stream.sendResponse(response, endStream: false)
        for i in 0..<self.count { self.stream.sendData(Self.event, endStream: i == self.count - 1) }
        if self.count == 0 { self.stream.sendEnd(trailers: nil) }
    }
    func streamDidClose(error: HTTPStreamError?) {}
}

final class Echo: HTTPStreamDelegate {
    let stream: any HTTPStream
    init(stream: any HTTPStream) {
        self.stream = stream
        self.stream.sendResponse(HTTPResponse(status: .ok), endStream: false)
    }
    func streamDidReceiveData(_ data: ByteBuffer) {
        self.stream.sendData(data, endStream: false)
        if self.stream.isWritable {
            self.stream.consume(data.readableBytes)
        } else {
            self.unconsumed += data.readableBytes
        }
    }
    var unconsumed = 0
    func streamWritabilityDidChange(isWritable: Bool) {
        if isWritable && self.unconsumed > 0 {
            self.stream.consume(self.unconsumed)
            self.unconsumed = 0
        }
    }
    func streamDidReceiveEnd(trailers: HTTPFields?) { self.stream.sendEnd(trailers: nil) }
    func streamDidClose(error: HTTPStreamError?) {}
}

final class BulkWriter: HTTPStreamDelegate {
    static let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 16 * 1024)
    let stream: any HTTPStream
    var remaining: Int
    init(stream: any HTTPStream, remaining: Int) {
        self.stream = stream
        self.remaining = remaining
    }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.stream.sendResponse(HTTPResponse(status: .ok), endStream: false)
        self.pump()
    }
    func pump() {
        while self.remaining > 0 && self.stream.isWritable {
            let n = min(self.remaining, Self.chunk.readableBytes)
            self.remaining -= n
            self.stream.sendData(Self.chunk.getSlice(at: 0, length: n)!, endStream: self.remaining == 0)
        }
    }
    func streamWritabilityDidChange(isWritable: Bool) { if isWritable { self.pump() } }
    func streamDidClose(error: HTTPStreamError?) {}
}

final class WithTrailers: HTTPStreamDelegate {
    let stream: any HTTPStream
    init(stream: any HTTPStream) { self.stream = stream }
    func streamDidReceiveData(_ data: ByteBuffer) { self.stream.consume(data.readableBytes) }
    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.stream.sendResponse(HTTPResponse(status: .ok), endStream: false)
        self.stream.sendData(ByteBuffer(string: "body"), endStream: false)
        self.stream.sendEnd(trailers: [HTTPField.Name("x-checksum")!: "42"])
    }
    func streamDidClose(error: HTTPStreamError?) {}
}
