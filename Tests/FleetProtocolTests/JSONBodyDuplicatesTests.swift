import FleetProtocol
import NIOCore
import Testing

@Suite("Duplicate member names at any depth")
struct JSONBodyDuplicatesTests {
    private func duplicate(_ json: String) -> String? {
        JSONBody.firstNestedDuplicate(in: ByteBuffer(string: json))
    }

    @Test("Found in a message, a content part, an array of objects, and escaped")
    func found() {
        #expect(self.duplicate(#"{"messages":[{"role":"user","content":"hi","role":"wizard"}]}"#) == "role")
        #expect(
            self.duplicate(#"{"m":[{"content":[{"type":"text","text":"a","type":"image_url"}]}]}"#) == "type")
        #expect(self.duplicate(#"{"a":{"b":{"c":1,"c":2}}}"#) == "c")
        #expect(self.duplicate(#"{"model":"x","mod\u0065l":"y"}"#) == "model")
        // Past 16 members the names go into a set; the 17th repeats the first.
        let many = (0..<16).map { "\"k\($0)\":0" }.joined(separator: ",") + ",\"k0\":1"
        #expect(self.duplicate("{\(many)}") == "k0")
    }

    @Test("The same name in sibling objects is no duplicate; nor is a body that is not JSON")
    func notFound() {
        #expect(self.duplicate(#"{"messages":[{"role":"user"},{"role":"assistant"}],"role":1}"#) == nil)
        #expect(self.duplicate(#"[{"a":1},{"a":2}]"#) == nil)
        #expect(self.duplicate(#"{"a":"#) == nil)
        #expect(self.duplicate("") == nil)
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(self.duplicate(deep) == nil)  // past the scanner's depth: the decoder judges it
    }
}
