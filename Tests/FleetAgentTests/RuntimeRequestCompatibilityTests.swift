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

    @Test("A developer message is sent as a system message; a role elsewhere, or in text, is left alone (helper-100)")
    func developerRole() {
        func rewritten(_ body: String) -> String {
            String(buffer: RuntimeRequestCompatibility.systemForDeveloper(ByteBuffer(string: body)))
        }
        #expect(
            rewritten(
                #"{"model":"m","messages":[{"role":"developer","content":"Be brief"},{"role":"user","content":"Hi"}]}"#)
                == #"{"model":"m","messages":[{"role":"system","content":"Be brief"},{"role":"user","content":"Hi"}]}"#)
        #expect(
            rewritten("{\"messages\":[{\"role\" :\n \"developer\" ,\"content\":\"a\"},{\"role\":\"developer\"}]}")
                == "{\"messages\":[{\"role\" :\n \"system\" ,\"content\":\"a\"},{\"role\":\"system\"}]}")
        let untouched = [
            // A role outside the messages, text that only looks like one, a longer role name.
            #"{"metadata":{"role":"developer"},"messages":[{"role":"user","content":"x"}]}"#,
            #"{"messages":[{"role":"user","content":"\"role\":\"developer\""}]}"#,
            #"{"messages":[{"role":"developers","content":"x"}]}"#,
            #"{"messages":[{"role":"user","content":"developer\""}]}"#,
            #"{"model":"developer\"","messages":5}"#,
            #"{"tools":[{"type":"function","function":{"name":"f","parameters":{"properties":{"role":{"enum":["developer"]}}}}}],"messages":[{"role":"user","content":"x"}]}"#,
        ]
        for body in untouched { #expect(rewritten(body) == body, "\(body)") }
    }
}
