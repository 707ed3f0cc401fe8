import FleetProtocol
import NIOCore

/// The bodies the dispatcher sends upstream, each the client's bytes edited as little as the
/// upstream needs: a car's without the app's user identifiers, central's streamed with usage (or
/// whole, without `stream_options`), a prefix continuation's with the delivered text.
extension Dispatcher {
    /// The body for a central endpoint (a generic OpenAI-compatible server): the client's bytes
    /// with `stream: true` and usage asked for — every other field passes through unchanged — and,
    /// for a continuation, the delivered text to continue from.
    func centralBody(resumeFrom: Int) -> ByteBuffer {
        if resumeFrom == 0, let members = self.request.members {  // read by the validator: no second pass
            return JSONBody.editing(
                self.request.body, members: members, removing: Self.centralRemoved, appending: Self.centralAppended)
        }
        let body = resumeFrom > 0 ? self.prefixBody(delivered: resumeFrom) : self.request.body
        return JSONBody.editing(body, removing: Self.centralRemoved, appending: Self.centralAppended) ?? body
    }

    /// The body for a car: the client's, without what names the app's end user or links their
    /// requests to one another (``carWithheld``). A car is trusted with one job's prompt and nothing
    /// else (docs/security.md); a car runtime received `user`, `safety_identifier`, `prompt_cache_key`
    /// and `metadata` byte for byte (helper-60). Central capacity, run by the operator inside the
    /// zone, still gets them. Copied only when one is present: `members`, the validator's, spares
    /// the usual body a second scan.
    static func carBody(_ body: ByteBuffer, members: [JSONBody.Member]?) -> ByteBuffer {
        guard let members = members ?? JSONBody.members(of: body),
            members.contains(where: { Self.isCarWithheld($0.name) })
        else { return body }
        return JSONBody.editing(body, members: members, removing: Self.carWithheld, appending: [])
    }

    /// The top-level members a car never receives.
    static let carWithheld: Set<String> = ["user", "safety_identifier", "prompt_cache_key", "metadata"]

    /// ``carWithheld``'s test without hashing (a usual body's members are none of them).
    private static func isCarWithheld(_ name: String) -> Bool {
        switch name {
        case "user", "safety_identifier", "prompt_cache_key", "metadata": true
        default: false
        }
    }

    /// What ``centralBody(resumeFrom:)`` removes and appends, built once.
    private static let centralRemoved: Set<String> = ["stream", "stream_options"]
    private static let centralAppended = [("stream", "true"), ("stream_options", "{\"include_usage\":true}")]

    /// Whether an attempt on `lease` asks for one whole answer instead of a stream: a `stream: false`
    /// chat or legacy completion on central capacity, from the start. Not a car (cars always stream
    /// over the tunnel), nor another replica (it relays a stream), nor a continuation (its answer
    /// continues text already delivered, which the relay joins), nor `/v1/responses` (its answer is
    /// a `response` object the relay renders from the text, not central's bytes).
    func asksWholeAnswer(_ lease: AttemptLease, resumeFrom: Int) -> Bool {
        guard case .central = lease else { return false }
        return !self.request.streaming && self.request.responses == nil && resumeFrom == 0
    }

    /// The body for a central endpoint asked for one whole answer: the client's bytes as they are —
    /// `stream` false or absent, kept — without `stream_options`, which OpenAI-compatible servers
    /// refuse without `stream: true`. Edited only when the body may hold that member: its name, or an
    /// escape that could spell it (`\u`), appears in the bytes.
    func centralAnswerBody() -> ByteBuffer {
        let body = self.request.body
        guard JSONBody.contains(body, "stream_options") || JSONBody.contains(body, #"\u"#) else { return body }
        return JSONBody.editing(body, removing: ["stream_options"], appending: []) ?? body
    }

    /// The client's body with the delivered text to continue from (prefix continuation).
    func prefixBody(delivered: Int) -> ByteBuffer {
        JSONBody.continuation(of: self.request.body, text: self.relay.deliveredText, delivered: delivered)
            ?? self.request.body
    }
}
