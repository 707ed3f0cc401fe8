/// Renders chat messages into one prompt, as the model's own chat template does, so a
/// continuation can go through `/v1/completions` ending in the delivered text: a runtime's chat
/// path always appends a generation prompt and cannot continue a final assistant message
/// (llama-cpp-python's server among them; DESIGN.md, Contracts: continuation).
///
/// Only ChatML (`<|im_start|>role\n…<|im_end|>\n`) is built in: SmolLM2's template is ChatML with
/// a default system prompt when there is none — read from the GGUF's `tokenizer.chat_template`.
public struct ChatTemplate: Sendable, Hashable {
    /// The system prompt the template adds when the conversation has none.
    public var defaultSystemPrompt: String?
    /// Ends one message; added to the continuation's stop sequences.
    public let endOfMessage = "<|im_end|>"

    /// Special tokens of ChatML: a runtime's detokenizer renders them as no text, so offsets into
    /// the echoed text of a teacher-forced prompt do not count them (issue #20's audits).
    public static let specialTokens = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]

    /// SmolLM2-Instruct's template.
    public static let smolLM2 = ChatTemplate(
        defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face")

    /// Plain ChatML with no default system prompt.
    public static let chatML = ChatTemplate(defaultSystemPrompt: nil)

    public init(defaultSystemPrompt: String?) { self.defaultSystemPrompt = defaultSystemPrompt }

    /// The prompt for `messages` whose last one is the assistant's partial answer, left open.
    public func continuationPrompt(_ messages: [ChatMessage]) -> String {
        var prompt = ""
        // A developer message is the system message of a model that knows no developer role, as the chat
        // path sends it (RuntimeRequestCompatibility; helper-102).
        func role(_ message: ChatMessage) -> String { message.role == "developer" ? "system" : message.role }
        if let system = self.defaultSystemPrompt, messages.first.map(role) != "system" {
            prompt += "<|im_start|>system\n\(system)\(self.endOfMessage)\n"
        }
        for (index, message) in messages.enumerated() {
            prompt += "<|im_start|>\(role(message))\n\(message.content)"
            if index < messages.count - 1 || message.role != "assistant" { prompt += "\(self.endOfMessage)\n" }
        }
        if messages.last?.role != "assistant" { prompt += "<|im_start|>assistant\n" }
        return prompt
    }
}
