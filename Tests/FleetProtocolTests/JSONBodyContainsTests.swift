import FleetProtocol
import NIOCore
import Testing

@Suite("JSONBody.contains")
struct JSONBodyContainsTests {
    @Test("Agrees with firstRange(of:) on random bodies, with the needle at the start, the end, cut short and repeated")
    func agreesWithFirstRange() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array(#"s_\u"tream_options{}"#.utf8)
        for _ in 0..<3_000 {
            var bytes = (0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            switch Int.random(in: 0...4, using: &generator) {
            case 0: bytes.insert(contentsOf: "stream_options".utf8, at: 0)
            case 1: bytes.append(contentsOf: "stream_options".utf8)
            case 2: bytes.append(contentsOf: "stream_option".utf8)
            case 3: bytes.insert(contentsOf: "\\u".utf8, at: Int.random(in: 0...bytes.count, using: &generator))
            default: break
            }
            var buffer = ByteBuffer(bytes: [0x20, 0x20] + bytes)
            buffer.moveReaderIndex(forwardBy: Int.random(in: 0...2, using: &generator))  // the readable bytes only
            let view = buffer.readableBytesView
            #expect(JSONBody.contains(buffer, "stream_options") == (view.firstRange(of: "stream_options".utf8) != nil))
            #expect(JSONBody.contains(buffer, #"\u"#) == (view.firstRange(of: #"\u"#.utf8) != nil))
            #expect(JSONBody.contains(buffer, " ") == (view.firstRange(of: " ".utf8) != nil))
        }
        #expect(!JSONBody.contains(ByteBuffer(), "a"))
        #expect(JSONBody.contains(ByteBuffer(string: "ab"), ""))
    }
}
