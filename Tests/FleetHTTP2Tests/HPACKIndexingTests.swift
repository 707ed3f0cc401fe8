import CNGHTTP2
import FleetTesting
import HTTPTypes
import NIOCore
import Synchronization
import Testing

@testable import FleetHTTP2

/// Answers every request 200 with a request id of its own (`indexingStrategy` `.avoid`) and a
/// field that repeats (`.automatic`).
private struct IdentifyingResponder: HTTPServerResponder {
    static let next = Atomic<Int>(0)

    func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
        -> any HTTPStreamDelegate
    {
        var id = HTTPField(
            name: HTTPField.Name("x-request-id")!, value: "id-\(Self.next.add(1, ordering: .relaxed).newValue)")
        id.indexingStrategy = .avoid
        let headers = HTTPFields([id, HTTPField(name: HTTPField.Name("x-fleet-zone")!, value: "eu")])
        return FixedResponseDelegate(stream: stream, status: .ok, body: ByteBuffer(string: "ok"), headers: headers)
    }

    func earlyResponse(method: String, path: String, eventLoop: any EventLoop) -> HTTPPrebuiltResponse? {
        path == "/refused" ? Self.refusal : nil
    }

    /// A refusal whose echoed request id is new each time.
    static let refusal = HTTPPrebuiltResponse(
        status: 503, fields: [("content-type", "application/json"), ("retry-after", "1")],
        body: ByteBuffer(string: #"{"error":{"code":"server_overloaded"}}"#),
        echo: .init(
            name: "x-request-id", accepts: { _ in false },
            generate: { "generated-\(Self.next.add(1, ordering: .relaxed).newValue)" }))
}

/// A value that is the message's alone stays out of the HPACK dynamic table (issue #19): indexed,
/// each evicted a field that repeats, and made every later field of its name a walk through all
/// the table's entries of that name — ~100 `memcmp`s a refused request's head.
@Suite("HPACK: per-message values are never indexed")
struct HPACKIndexingTests {
    @Test("A field's indexing strategy sets nghttp2's flag")
    func flags() {
        var avoided = HTTPField(name: .contentType, value: "a")
        avoided.indexingStrategy = .avoid
        var disallowed = HTTPField(name: .authorization, value: "b")
        disallowed.indexingStrategy = .disallow
        let fields = HTTPFields([avoided, disallowed, HTTPField(name: .cacheControl, value: "c")])
        let flags = NGHTTP2Headers.withNV(fields: fields) { nv, count in (0..<count).map { nv[$0].flags } }
        #expect(flags == [NGHTTP2Headers.neverIndexed, NGHTTP2Headers.neverIndexed, NGHTTP2Headers.indexed])
    }

    /// Sends 60 requests with `send`, each answered with a request id of its own: the ids seen, and the
    /// server's encoding table size after each answer (checked against the client's decoding one).
    func sixty(
        _ pair: Pair, _ send: (Recorder) throws -> Void, _ check: (HTTPResponse?) -> Void
    ) throws -> (ids: Set<String>, sizes: [Int]) {
        var sizes: [Int] = []
        var ids: Set<String> = []
        for _ in 0..<60 {
            let recorder = Recorder()
            try send(recorder)
            try pair.interact()
            check(recorder.response)
            recorder.response?.headerFields[HTTPField.Name("x-request-id")!].map { _ = ids.insert($0) }
            let server = pair.serverHandler.dynamicTableSizes, client = pair.clientHandler.dynamicTableSizes
            #expect(server.encoding == client.decoding)
            sizes.append(server.encoding)
        }
        return (ids, sizes)
    }

    @Test("Responses with their own request ids leave both dynamic tables as the first left them")
    func responses() throws {
        let pair = try Pair(responder: IdentifyingResponder())
        let (ids, sizes) = try self.sixty(pair, { _ = try pair.get("/", recorder: $0) }) { response in
            #expect(response?.status == .ok)
            #expect(response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")
        }
        #expect(ids.count == 60)
        // The repeating field was indexed once; 60 indexed ids would have filled the 4 KiB table.
        #expect(sizes.first! > 0 && Set(sizes) == [sizes.first!])
    }

    @Test("Early answers with generated request ids leave the dynamic table as the first left it")
    func earlyAnswers() throws {
        let pair = try Pair(responder: IdentifyingResponder())
        let request = HTTPRequest(method: .post, scheme: "http", authority: "test", path: "/refused")
        let (ids, sizes) = try self.sixty(
            pair, { $0.stream = try pair.clientHandler.openStream(request, endStream: true, delegate: $0) }
        ) { #expect($0?.status.code == 503) }
        #expect(ids.count == 60)
        #expect(sizes.first! > 0 && Set(sizes) == [sizes.first!])
    }
}
