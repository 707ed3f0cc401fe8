import FleetProtocol
import NIOCore
import Testing

@testable import FleetAgent

@Suite("The agent's prompt estimate when its runtime reports no usage")
struct PromptEstimateTests {
    private func job(_ json: String, resumeFrom: Int, continuesText: Bool) throws -> InferenceJob {
        let body = try JSON.decodeRequest(CompletionRequest.self, from: ByteBuffer(string: json))
        var job = InferenceJob(
            model: "m", prompt: body.promptText, maxTokens: 100, stop: [], seed: 1, resumeFrom: resumeFrom,
            body: body)
        job.continuesText = continuesText
        return job
    }

    /// The gateway takes `resumeFrom` tokens off a text continuation's prompt count (the delivered answer in
    /// its last message): the agent counts that message so, or numbers' short tokens took the client's
    /// `prompt_tokens` to 0 after a departure (helper-113).
    @Test("A text continuation counts its delivered answer as resumeFrom tokens, as the gateway takes them off")
    func continuation() throws {
        let question = #"{"role":"user","content":"List the numbers from 1 to 100, one per line."}"#
        let original = try self.job(#"{"model":"m","messages":[\#(question)]}"#, resumeFrom: 0, continuesText: false)
        let answer = (1...60).map(String.init).joined(separator: "\n")  // ~120 tokens in ~170 bytes
        let continuing = try self.job(
            #"{"model":"m","messages":[\#(question),{"role":"assistant","content":\#(JSON.string(answer))}]}"#,
            resumeFrom: 120, continuesText: true)
        let estimate = OpenAILocalJob.estimatedPromptTokens(of: continuing)
        #expect(estimate - 120 == OpenAILocalJob.estimatedPromptTokens(of: original))
        #expect(OpenAILocalJob.estimatedPromptTokens(of: original) == original.prompt.estimatedTokens)
        // Not a text continuation (an exact one, a first attempt): the prompt as sent.
        let exact = try self.job(
            #"{"model":"m","messages":[\#(question),{"role":"assistant","content":"1"}]}"#, resumeFrom: 120,
            continuesText: false)
        #expect(OpenAILocalJob.estimatedPromptTokens(of: exact) == exact.prompt.estimatedTokens)
    }
}
