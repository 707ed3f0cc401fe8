import FleetHTTP2
import HTTPTypes
import NIOCore

/// A complete response with headers, after the request's end (the admin listener's requests are GETs).
final class DashboardResponse: HTTPStreamDelegate {
    let stream: any HTTPStream
    let status: HTTPResponse.Status
    let body: ByteBuffer
    let contentType: String
    let headers: HTTPFields

    convenience init(
        stream: any HTTPStream, status: HTTPResponse.Status, body: String,
        contentType: String = "text/plain; charset=utf-8",
        headers: HTTPFields = [:]
    ) {
        self.init(
            stream: stream, status: status, body: ByteBuffer(string: body), contentType: contentType, headers: headers)
    }

    init(
        stream: any HTTPStream, status: HTTPResponse.Status, body: ByteBuffer, contentType: String,
        headers: HTTPFields = [:]
    ) {
        self.stream = stream
        self.status = status
        self.body = body
        self.contentType = contentType
        self.headers = headers
    }

    private var received = 0

    func streamDidReceiveData(_ data: ByteBuffer) {
        self.stream.consume(data.readableBytes)
        self.received += data.readableBytes
        if self.received > 1 << 16 { self.stream.reset(.cancel) }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {
        self.stream.sendResponse(
            status: self.status, contentType: self.contentType, body: self.body, headers: self.headers)
    }

    func streamDidClose(error: HTTPStreamError?) {}
}
