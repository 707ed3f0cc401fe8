import NIOCore
import Testing

@testable import FleetAgent

@Suite("What the agent changes for its runtime")
struct RuntimeRequestCompatibilityTests {
    private func rewritten(_ body: String) -> String {
        String(buffer: RuntimeRequestCompatibility.emptyingNullContent(ByteBuffer(string: body)))
    }

    @Test("content null becomes an empty text, with any whitespace; nothing else changes")
    func nullContent() {
        #expect(
            self.rewritten(
                #"{"messages":[{"role":"assistant","content":null,"tool_calls":[]},{"role":"tool","content":"x"}]}"#)
                == #"{"messages":[{"role":"assistant","content":"","tool_calls":[]},{"role":"tool","content":"x"}]}"#)
        #expect(self.rewritten("{\"content\" :\n null }") == "{\"content\" :\n \"\" }")
        #expect(self.rewritten(#"[{"content":null},{"content":null}]"#) == #"[{"content":""},{"content":""}]"#)
        // Text that only looks like the member (its quotes are escaped), other nulls, other values.
        let untouched = [
            #"{"content":"say \"content\":null please","temperature":null}"#,
            #"{"contents":null,"content":"null"}"#,
            #"{"model":"m","messages":[]}"#,
        ]
        for body in untouched { #expect(self.rewritten(body) == body) }
    }
}
