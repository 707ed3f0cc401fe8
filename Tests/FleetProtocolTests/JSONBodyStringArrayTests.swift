import FleetProtocol
import NIOCore
import Testing

@Suite("JSONBody.stringArray")
struct JSONBodyStringArrayTests {
    @Test("Arrays of strings: how many, and the first one's token as written")
    func arrays() throws {
        func read(_ text: String) -> (count: Int, first: String?)? {
            JSONBody.stringArray(ByteBuffer(string: text)).map { ($0.count, $0.first.map { String(buffer: $0) }) }
        }
        #expect(read(#"["Once"]"#)! == (1, #""Once""#))
        #expect(read(" [ \"a\\\"b\" , \"c\" ] ")! == (2, #""a\"b""#))
        #expect(read("[]")! == (0, nil))
        for other in [#""Once""#, "[1, 2]", #"["a", 1]"#, #"["a""#, #"["a",]"#, #"["a"] x"#, "{}", #"["\u"]"#, ""] {
            #expect(read(other) == nil, "\(other)")
        }
    }
}
