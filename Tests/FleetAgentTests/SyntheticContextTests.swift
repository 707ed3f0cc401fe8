import FleetAgent
import FleetProtocol
import Foundation
import Testing

@Suite("The synthetic engine's context window")
struct SyntheticContextTests {
    /// As the agent makes it: without `max_tokens`, 256 for chat and OpenAI's 16 for a legacy completion.
    static func job(words: Int, maxTokens: Int?, chat: Bool = true) throws -> InferenceJob {
        try Self.job(text: String(repeating: "word ", count: words), maxTokens: maxTokens, chat: chat)
    }

    static func job(text: String, maxTokens: Int?, chat: Bool) throws -> InferenceJob {
        var object: [String: Any] = ["model": "fleet-8b"]
        if chat { object["messages"] = [["role": "user", "content": text]] } else { object["prompt"] = text }
        if let maxTokens { object["max_tokens"] = maxTokens }
        let body = try JSONDecoder().decode(
            CompletionRequest.self, from: JSONSerialization.data(withJSONObject: object))
        return InferenceJob(
            model: "fleet-8b", prompt: body.promptText, maxTokens: maxTokens ?? (chat ? 256 : 16), stop: [], seed: 1,
            body: body)
    }

    @Test("Prompt and max_tokens over the window: OpenAI's 400 context_length_exceeded naming the prompt's field")
    func overWindow() throws {
        // "user: " + 5 bytes a word, 4 bytes a token.
        let fits = try Self.job(words: 26_000, maxTokens: 100)
        #expect(SyntheticEngine.overContext(fits, window: 32_768) == nil)
        let over = try #require(
            SyntheticEngine.overContext(try Self.job(words: 26_000, maxTokens: 1_000), window: 32_768))
        #expect(over.code == "context_length_exceeded" && over.rejectedStatus == 400 && over.param == "messages")
        #expect(over.message.contains("32768 tokens") && over.message.contains("in the completion"))
        // Without max_tokens only the prompt counts.
        #expect(SyntheticEngine.overContext(try Self.job(words: 26_000, maxTokens: nil), window: 32_768) == nil)
        let legacy = try #require(
            SyntheticEngine.overContext(try Self.job(words: 7_000, maxTokens: nil, chat: false), window: 8_192))
        #expect(legacy.param == "prompt" && legacy.message.contains("(8750 in the prompt, 16 in the completion)"))
        // The legacy default's 16 tokens count (helper-123: 8,186 + 16 passed an 8,192 window).
        let edge = try Self.job(text: String(repeating: "a", count: 32_744), maxTokens: nil, chat: false)
        #expect(SyntheticEngine.overContext(edge, window: 8_192)?.message.contains("8202 tokens") == true)
        #expect(SyntheticEngine.overContext(edge, window: 8_202) == nil)
        #expect(HardwareProfile.of(.hw3).contextTokens == 8_192 && HardwareProfile.of(.ai5).contextTokens == 32_768)
    }
}
