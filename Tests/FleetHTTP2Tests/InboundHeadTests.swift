import HTTPTypes
import Testing

@testable import FleetHTTP2

/// Header blocks fed one after another into one connection's ``InboundHead``: every request and
/// field list that reuses the previous head's values equals the one built anew from the bytes.
@Suite("Inbound head: reused values equal the ones built anew", .timeLimit(.minutes(1)))
struct InboundHeadTests {
    typealias Block = [(String, String)]

    static let get: Block = [
        (":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1:8080"), (":path", "/"),
        ("user-agent", "h2load nghttp2/1.52.0"), ("accept", "*/*"),
    ]
    /// Heads in sequence on one connection: repeats, and changes in every place reuse could go wrong.
    static let sequence: [Block] = [
        get, get, get,
        get.map { $0.0 == ":path" ? ($0.0, "/v1/chat/completions") : $0 },
        get.map { $0.0 == "user-agent" ? ($0.0, "curl/8") : $0 },
        Array(get.dropLast()),
        get + [("x-request-id", "abc"), ("bad name", "v"), ("content-type", "caf\u{e9}")],
        get + [("x-request-id", "abc"), ("bad name", "v"), ("content-type", "caf\u{e9}")],
        get.filter { $0.0 != ":authority" },
        get.map { $0.0 == ":method" ? ($0.0, "POST") : $0 },
        [(":method", "GET"), (":path", "/")],
        get, get.map { $0.0 == "accept" ? ("accept-encoding", "gzip") : $0 },
        get.map { $0.0 == ":method" ? ($0.0, "G ET") : $0 },
        get,
    ]

    /// What building from scratch gives for `block`.
    static func general(_ block: Block) -> HTTPRequest? {
        var pseudo: [String: String] = [:]
        var fields = HTTPFields()
        for (name, value) in block {
            if name.hasPrefix(":") {
                pseudo[name] = value
            } else if let fieldName = HTTPField.Name(parsed: name) {
                fields.append(HTTPField(name: fieldName, lenientValue: Array(value.utf8)))
            }
        }
        guard let name = pseudo[":method"], let method = HTTPRequest.Method(name) else { return nil }
        return HTTPRequest(
            method: method, scheme: pseudo[":scheme"], authority: pseudo[":authority"], path: pseudo[":path"],
            headerFields: fields)
    }

    static func feed(_ block: Block, into head: InboundHead) {
        head.begin(.collected, streamID: 1)
        for (name, value) in block {
            Array(name.utf8).withUnsafeBufferPointer { name in
                Array(value.utf8).withUnsafeBufferPointer { value in head.append(name: name, value: value) }
            }
        }
    }

    @Test("a sequence of request heads, with trailers between them")
    func requests() {
        let head = InboundHead()
        for (i, block) in Self.sequence.enumerated() {
            Self.feed(block, into: head)
            let request = head.takeRequest()
            let expected = Self.general(block)
            #expect(request == expected, "head \(i)")
            #expect(request?.headerFields.map(\.name.rawName) == expected?.headerFields.map(\.name.rawName))
            // Trailers are not remembered as a head.
            Self.feed([("x-checksum", "42")], into: head)
            #expect(head.takeFields(isHead: false) == [HTTPField.Name("x-checksum")!: "42"])
        }
    }

    @Test("response heads keep their status and fields")
    func responses() {
        let head = InboundHead()
        for status in ["200", "200", "404", "200"] {
            let block: Block = [(":status", status), ("content-type", "text/plain"), ("server", "x")]
            Self.feed(block, into: head)
            #expect(head.pseudo.status == status)
            #expect(head.takeFields(isHead: true) == [.contentType: "text/plain", .server: "x"])
        }
    }
}
