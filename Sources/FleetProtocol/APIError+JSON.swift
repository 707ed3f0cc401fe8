public import NIOCore

extension APIError {
    /// The body an app gets, `{"error":{"code":…,"message":…,"param":…,"type":…}}`: what
    /// `JSON.buffer(body)` encodes (keys sorted, `param` null when absent), written directly.
    /// JSONEncoder's setup and its generic encode cost a refusal several microseconds: at twice
    /// capacity, a zone's busy answers — one a refused request — spent 5.8 % of the loop there
    /// (issue #19). `APIErrorJSONTests` checks it decodes to what JSONEncoder writes, byte for byte
    /// where the two escape alike (they differ only in backspace and form feed: `\u0008`, `\u000c`
    /// here, `\b`, `\f` there).
    public func jsonBody(allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var out = allocator.buffer(
            capacity: 56 + self.code.utf8.count + self.message.utf8.count + (self.param?.utf8.count ?? 4)
                + self.type.utf8.count)
        out.writeStaticString(#"{"error":{"code":"#)
        JSONBody.writeJSONString(self.code, into: &out)
        out.writeStaticString(#","message":"#)
        JSONBody.writeJSONString(self.message, into: &out)
        out.writeStaticString(#","param":"#)
        if let param = self.param {
            JSONBody.writeJSONString(param, into: &out)
        } else {
            out.writeStaticString("null")
        }
        out.writeStaticString(#","type":"#)
        JSONBody.writeJSONString(self.type, into: &out)
        out.writeStaticString("}}")
        return out
    }
}
