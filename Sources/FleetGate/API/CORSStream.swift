import FleetHTTP2
import HTTPTypes
import NIOCore

/// A client stream whose response head carries the CORS fields of an allowed origin
/// (``CORSPolicy/responseFields(origin:)``); everything else goes to the stream it wraps.
///
/// Only requests with an allowed `Origin` are wrapped, so the SDKs' requests (which send none) pay
/// nothing for it.
final class CORSStream: HTTPStream {
    private let inner: any HTTPStream
    private let fields: HTTPFields

    init(_ inner: any HTTPStream, fields: HTTPFields) {
        self.inner = inner
        self.fields = fields
    }

    var eventLoop: any EventLoop { self.inner.eventLoop }
    var isWritable: Bool { self.inner.isWritable }
    var bufferedOutboundBytes: Int { self.inner.bufferedOutboundBytes }
    var isClosed: Bool { self.inner.isClosed }

    func sendResponse(_ response: HTTPResponse, endStream: Bool) {
        var response = response
        response.headerFields.reserveCapacity(response.headerFields.count + self.fields.count)
        for field in self.fields where response.headerFields[field.name] == nil {
            response.headerFields.append(field)
        }
        self.inner.sendResponse(response, endStream: endStream)
    }

    func sendData(_ data: ByteBuffer, endStream: Bool) { self.inner.sendData(data, endStream: endStream) }
    func sendEnd(trailers: HTTPFields?) { self.inner.sendEnd(trailers: trailers) }
    func reset(_ code: HTTP2ErrorCode) { self.inner.reset(code) }
    func consume(_ bytes: Int) { self.inner.consume(bytes) }
    func flushNow() { self.inner.flushNow() }
}
