import FleetProtocol
import Testing

@Suite("Request ids")
struct RequestIDTests {
    @Test(
        "Issue #18 row 11: a client id that could forge log fields is replaced, a token is kept",
        arguments: [
            ("ok fleet.zone=us fleet.status=200", false), ("a\nb", false), ("a\"b", false), ("", false),
            ("id=1", false), ("é", false), (String(repeating: "a", count: 129), false),
            ("req-123_ABC.def:9", true), (String(repeating: "a", count: 128), true),
        ])
    func validation(header: String, kept: Bool) {
        let id = RequestID(header: header)
        #expect(id.fromClient == kept)
        #expect((id.value == header) == kept)
        #expect(RequestID.isWellFormed(id.value))
    }

    @Test("No header: a generated id")
    func generated() {
        let id = RequestID(header: nil)
        #expect(!id.fromClient && id.value.count == 36)
    }
}
