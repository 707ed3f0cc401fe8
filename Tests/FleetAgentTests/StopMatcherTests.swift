import Testing

@testable import FleetAgent

/// OpenAI's `stop`: the answer ends just before the first occurrence of a stop sequence, wherever
/// it falls.
@Suite("Stop sequences")
struct StopMatcherTests {
    /// The text a job emits for `tokens` under `stops`, and whether it stopped.
    func run(_ tokens: [String], _ stops: [String]) -> (text: String, stopped: Bool) {
        var matcher = StopMatcher(stops)
        var text = ""
        for token in tokens {
            switch matcher.next(token) {
            case .emit: text += token
            case .stop(let emitting): return (text + emitting, true)
            }
        }
        return (text, false)
    }

    @Test("Inside a token, at its start, across tokens, the earliest of several; empty stops ignored")
    func matches() {
        let tokens = ["The ", "battery ", "is ", "calm ", "and ", "the ", "car ", "waits "]
        #expect(self.run(tokens, ["the"]).text == "The battery is calm and ")  // case-sensitive, mid-text
        #expect(self.run(tokens, ["calm"]) == ("The battery is ", true))
        // Across tokens: the tokens already sent stay sent (a stream cannot take them back); nothing
        // of the token that completes it is.
        #expect(self.run(tokens, ["tery i"]) == ("The battery ", true))
        #expect(self.run(tokens, ["ry is ca"]) == ("The battery is ", true))
        #expect(self.run(tokens, ["car", "is"]) == ("The battery ", true))  // the earliest wins
        #expect(self.run(tokens, ["wait"]) == ("The battery is calm and the car ", true))
        #expect(self.run(tokens, ["", "zebra"]) == (tokens.joined(), false))
        #expect(self.run(tokens, []) == (tokens.joined(), false))
        #expect(self.run(["abc"], ["abcd"]) == ("abc", false))
        #expect(self.run(["ab", "cd"], ["bc"]) == ("ab", true))  // the stop began in emitted text
    }
}
