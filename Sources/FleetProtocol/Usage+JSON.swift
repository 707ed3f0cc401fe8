public import NIOCore

extension Usage {
    /// Writes `{"prompt_tokens":…,"completion_tokens":…,"total_tokens":…}` (and the details, when
    /// known) without JSONEncoder: the
    /// usage object of a streamed chunk, on the gateway's and the agent's per-stream path (#19).
    public func writeJSONObject(into buffer: inout ByteBuffer) {
        buffer.writeStaticString("{\"prompt_tokens\":")
        buffer.writeString(String(self.promptTokens))
        buffer.writeStaticString(",\"completion_tokens\":")
        buffer.writeString(String(self.completionTokens))
        buffer.writeStaticString(",\"total_tokens\":")
        buffer.writeString(String(self.totalTokens))
        if let details = self.details {
            buffer.writeStaticString(",\"prompt_tokens_details\":{\"cached_tokens\":")
            buffer.writeString(String(details.cachedTokens))
            buffer.writeStaticString("},\"completion_tokens_details\":{\"reasoning_tokens\":")
            buffer.writeString(String(details.reasoningTokens))
            buffer.writeStaticString("}")
        }
        buffer.writeStaticString("}")
    }
}
