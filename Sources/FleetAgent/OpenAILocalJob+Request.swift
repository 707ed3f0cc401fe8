import FleetProtocol
import NIOCore

extension OpenAILocalJob {
    /// The client's request, with the runtime's model name, streaming with usage.
    func upstreamRequest() throws -> (path: String, body: ByteBuffer) {
        guard let upstreamModel = self.engine.upstreamModelJSON[self.job.model] else {
            throw EngineError(code: "model_not_found", message: "this car does not serve '\(self.job.model)'")
        }
        var body = self.job.body
        // Every field the client sent goes through byte for byte; only these are the agent's.
        var remove: Set<String> = ["model", "stream", "stream_options"]
        var append: [(String, String)] = [
            ("model", upstreamModel), ("stream", "true"), ("stream_options", "{\"include_usage\":true}"),
        ]
        if self.job.body.messages == nil, self.job.body.outputLimit == nil {
            // OpenAI's legacy default (16) made explicit: runtimes' own differ (llama.cpp's server: unbounded).
            append.append(("max_tokens", String(self.job.maxTokens)))
        }
        if self.job.continuesText, let template = self.engine.configuration.chatTemplate, let messages = body.messages {
            // Continue the final assistant message: the chat path would start a new one.
            body.messages = nil
            remove.formUnion(["messages", "prompt", "stop"])
            append.append(("prompt", JSON.string(template.continuationPrompt(messages))))
            append.append(("stop", JSON.string((body.stop?.values ?? []) + [template.endOfMessage])))
        }
        let chat = body.messages != nil
        let raw = self.job.rawBody ?? JSON.buffer(self.job.body)
        let edited = JSONBody.editing(raw, removing: remove, appending: append) ?? raw
        return (
            chat ? "/chat/completions" : "/completions",
            chat
                ? RuntimeRequestCompatibility.systemForDeveloper(
                    RuntimeRequestCompatibility.emptyingNullContent(edited))
                : edited
        )
    }

    /// `body` asking for one answer, not a stream (``askWhyEmpty(_:)``), its other members as they were.
    static func unstreamed(_ body: ByteBuffer) -> ByteBuffer {
        JSONBody.editing(body, removing: ["stream", "stream_options"], appending: [("stream", "false")]) ?? body
    }

    /// The prompt's tokens when the runtime reports no usage (llama-cpp-python's server): ~4 bytes a token
    /// (``Prompt/estimatedTokens``). A text continuation's last message is the delivered answer, which the
    /// gateway counts as `resumeFrom` tokens and takes off the prompt again: counted so here too — by its
    /// bytes, the client's `prompt_tokens` fell by the difference, to 0 for numbers or code, whose tokens
    /// are shorter than 4 bytes (helper-113).
    static func estimatedPromptTokens(of job: InferenceJob) -> Int {
        guard job.continuesText, job.resumeFrom > 0, var messages = job.body.messages,
            messages.last?.role == "assistant"
        else { return job.prompt.estimatedTokens }
        messages.removeLast()
        var asked = job.body
        asked.messages = messages
        return asked.promptText.estimatedTokens + job.resumeFrom
    }
}
