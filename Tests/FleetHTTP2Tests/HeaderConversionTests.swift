import HTTPTypes
import Testing

@testable import FleetHTTP2

/// The header fast paths against the general ones they stand in for: the inbound constants and
/// the plain-ASCII value path against `HTTPField.Name(parsed:)` and `HTTPField(name:lenientValue:)`,
/// and the one-pass `nghttp2_nv` layout against the measuring one.
@Suite("Header conversion: fast paths equal the general ones", .timeLimit(.minutes(1)))
struct HeaderConversionTests {
    static let values: [[UInt8]] = [
        [], Array("h2load nghttp2/1.52.0".utf8), Array("a\tb c".utf8), Array("x".utf8),
        Array(" leading".utf8), Array("trailing ".utf8), Array("tab\t".utf8), Array("caf\u{e9}".utf8),
        [0x6F, 0x62, 0x73, 0xFF, 0x74], [0x61, 0x00, 0x62], [0x61, 0x0D, 0x0A, 0x62], [0x7F], [0x61, 0x7F, 0x62],
    ]

    @Test("a value becomes the field lenientValue makes, byte for byte", arguments: values)
    func value(bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { value in
            let fast = InboundField.field(.userAgent, value: value)
            let general = HTTPField(name: .userAgent, lenientValue: value)
            #expect(fast == general)
            #expect(fast.withUnsafeBytesOfValue { Array($0) } == general.withUnsafeBytesOfValue { Array($0) })
        }
    }

    @Test(
        "a name becomes the one Name(parsed:) makes",
        arguments: [
            "te", "accept", "user-agent", "content-type", "authorization", "content-length", "accept-encoding",
            "x-request-id", "accepts", "user-agenx",
        ])
    func name(name: String) {
        Array(name.utf8).withUnsafeBufferPointer { bytes in
            let fast = InboundField.name(bytes)
            #expect(fast == HTTPField.Name(parsed: name))
            #expect(fast?.rawName == name)
        }
    }

    @Test("a method or scheme keeps its text", arguments: ["GET", "POST", "http", "https", "PUT", "GETX", "htt"])
    func pseudo(value: String) {
        #expect(Array(value.utf8).withUnsafeBufferPointer { InboundField.pseudoValue($0) } == value)
    }

    static let heads: [(String, HTTPFields)] = [
        ("no fields", [:]),
        ("a typical head", [.contentType: "text/event-stream", .contentLength: "13", .cacheControl: "no-cache"]),
        ("forbidden fields dropped", [.connection: "close", HTTPField.Name("keep-alive")!: "5", .te: "trailers"]),
        (
            "more fields than the scratch holds",
            HTTPFields((0..<40).map { HTTPField(name: HTTPField.Name("x-f\($0)")!, value: "v\($0)") })
        ),
        ("more bytes than the scratch holds", [.authorization: String(repeating: "k", count: 3000)]),
    ]

    @Test("the one-pass layout equals the measured one, or declines", arguments: heads)
    func layout(name: String, fields: HTTPFields) {
        let exact = NGHTTP2Headers.withExactNV(
            (":status", "200"), nil, (":path", "/v1"), nil, fields: fields, NGHTTP2Headers.lines)
        let scratch = NGHTTP2Headers.withScratchNV(
            (":status", "200"), nil, (":path", "/v1"), nil, fields: fields, NGHTTP2Headers.lines)
        let fits =
            fields.count + 2 <= NGHTTP2Headers.scratchFields
            && exact.reduce(0) { $0 + $1.utf8.count - 2 } <= NGHTTP2Headers.scratchBytes
        #expect(scratch == (fits ? exact : nil))
        #expect(exact.first == ":status: 200")
        #expect(!exact.contains { $0.hasPrefix("connection") || $0.hasPrefix("keep-alive") })
        let response = HTTPResponse(status: .ok, headerFields: fields)
        #expect(NGHTTP2Headers.withNV(response: response, NGHTTP2Headers.lines).count == exact.count - 1)
    }
}
