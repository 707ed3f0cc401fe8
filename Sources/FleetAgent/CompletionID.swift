import FleetProtocol

/// The ids a car gives its completions: `chatcmpl-` (a legacy completion's `cmpl-`) and 24 random
/// lowercase hex digits, as OpenAI's look. Issue #19: formatting a Foundation `UUID` and removing its dashes was 2 % of the
/// agent's CPU per stream.
package enum CompletionID {
    /// A new id; `chat` false for a legacy completion (`cmpl-`, helper-60).
    package static func make(chat: Bool = true) -> String {
        // No system call: the gateway's identifier generator (unique, unpredictable).
        var bits = IdentifierRandom()
        let high = bits.next()
        let low = UInt32(truncatingIfNeeded: bits.next())
        let digits = Array("0123456789abcdef".utf8)
        var id = Array((chat ? "chatcmpl-" : "cmpl-").utf8)
        id.reserveCapacity(id.count + 24)
        for shift in stride(from: 60, through: 0, by: -4) {
            id.append(digits[Int(truncatingIfNeeded: high >> shift) & 0xF])
        }
        for shift in stride(from: 28, through: 0, by: -4) {
            id.append(digits[Int(truncatingIfNeeded: low >> shift) & 0xF])
        }
        return String(decoding: id, as: UTF8.self)
    }
}
