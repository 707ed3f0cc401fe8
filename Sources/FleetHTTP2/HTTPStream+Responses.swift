public import HTTPTypes
public import NIOCore

extension HTTPStream {
    /// Sends a complete response with a body in one go.
    public func sendResponse(
        status: HTTPResponse.Status, contentType: String, body: ByteBuffer, headers: HTTPFields = [:]
    ) {
        var fields = headers
        fields.reserveCapacity(headers.count + 2)
        // Appended when absent: the setter searches and replaces (~1 k instructions a field; issue #19).
        if fields[.contentType] == nil {
            fields.append(HTTPField(name: .contentType, value: contentType))
        } else {
            fields[.contentType] = contentType
        }
        let length = String(body.readableBytes)
        if fields[.contentLength] == nil {
            fields.append(HTTPField(name: .contentLength, value: length))
        } else {
            fields[.contentLength] = length
        }
        self.sendResponse(HTTPResponse(status: status, headerFields: fields), endStream: body.readableBytes == 0)
        if body.readableBytes > 0 { self.sendData(body, endStream: true) }
    }
}

/// Collects a request body up to a limit, giving flow-control credit as it goes.
public struct BodyAccumulator {
    /// The largest body accepted.
    public let limit: Int
    /// The bytes so far.
    public private(set) var buffer: ByteBuffer
    /// True once the limit was exceeded; later bytes are dropped.
    public private(set) var exceeded = false

    public init(limit: Int) {
        self.limit = limit
        self.buffer = ByteBuffer()
    }

    /// Appends `data` (consuming it on `stream`). Returns false once over the limit.
    public mutating func append(_ data: ByteBuffer, consumingOn stream: any HTTPStream) -> Bool {
        stream.consume(data.readableBytes)
        guard !self.exceeded else { return false }
        if self.buffer.readableBytes + data.readableBytes > self.limit {
            self.exceeded = true
            self.buffer = ByteBuffer()
            return false
        }
        var data = data
        self.buffer.writeBuffer(&data)
        return true
    }
}

/// Answers a request with a fixed response, discarding its body (up to 1 MiB; a larger one
/// resets the stream).
///
/// By default the answer goes out once the request has ended. With `respondNow` it goes out on
/// the request head — for a refusal that does not depend on the body (401), so no body byte is
/// ever buffered — and on HTTP/2 the rest of the body is drained (the stream does so whenever its
/// response ends before its request).
public final class FixedResponseDelegate: HTTPStreamDelegate {
    let stream: any HTTPStream
    let status: HTTPResponse.Status
    let body: ByteBuffer
    let contentType: String
    let headers: HTTPFields
    var discarded = DiscardedBody()
    var responded = false

    /// - Parameters:
    ///   - stream: the stream to answer on.
    ///   - status: the response status.
    ///   - body: the response body.
    ///   - contentType: its content type.
    ///   - headers: further response fields.
    ///   - respondNow: answer at once instead of after the request body.
    public init(
        stream: any HTTPStream, status: HTTPResponse.Status, body: ByteBuffer, contentType: String = "application/json",
        headers: HTTPFields = [:], respondNow: Bool = false
    ) {
        self.stream = stream
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
        if respondNow {
            self.respond()
        }
    }

    public func streamDidReceiveData(_ data: ByteBuffer) {
        self.discarded.discard(data, on: self.stream)
    }

    public func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.respond()
    }

    public func streamDidClose(error: HTTPStreamError?) {}

    private func respond() {
        guard !self.responded else { return }
        self.responded = true
        self.stream.sendResponse(
            status: self.status, contentType: self.contentType, body: self.body, headers: self.headers)
    }
}
