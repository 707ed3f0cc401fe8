import FleetAgent
import Testing

/// The ids a car gives its completions (issue #19: made without Foundation's UUID).
@Suite("Completion ids")
struct CompletionIDTests {
    @Test("chatcmpl- and 24 lowercase hex digits, a new one each time", .timeLimit(.minutes(1)))
    func shape() {
        let ids = (0..<100).map { _ in CompletionID.make() }
        for id in ids {
            #expect(id.hasPrefix("chatcmpl-"))
            #expect(id.utf8.count == 33)
            #expect(id.dropFirst(9).allSatisfy { "0123456789abcdef".contains($0) })
        }
        #expect(Set(ids).count == ids.count)
        let legacy = CompletionID.make(chat: false)
        #expect(legacy.hasPrefix("cmpl-") && legacy.utf8.count == 29)
    }
}
