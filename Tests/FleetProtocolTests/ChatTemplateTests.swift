import FleetProtocol
import Testing

@Suite("The chat template of a continued answer")
struct ChatTemplateTests {
    @Test("ChatML with the partial answer left open; a developer message is a system message (helper-102)")
    func continuation() {
        let template = ChatTemplate(defaultSystemPrompt: "Default.")
        let partial = ChatMessage(role: "assistant", content: "Once upon")
        #expect(
            template.continuationPrompt([ChatMessage(role: "user", content: "Tell"), partial])
                == "<|im_start|>system\nDefault.<|im_end|>\n<|im_start|>user\nTell<|im_end|>\n<|im_start|>assistant\nOnce upon"
        )
        // The app's developer message stands in for the default system prompt, as on the chat path.
        #expect(
            template.continuationPrompt([ChatMessage(role: "developer", content: "Brief."), partial])
                == "<|im_start|>system\nBrief.<|im_end|>\n<|im_start|>assistant\nOnce upon")
    }
}
