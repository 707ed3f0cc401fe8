import FleetProtocol

/// The ids a car gives its completions: `chatcmpl-` and 24 random lowercase hex digits, as
/// OpenAI's look. Issue #19: formatting a Foundation `UUID` and removing its dashes was 2 % of the
/// agent's CPU per stream.
package enum CompletionID {
    /// A new id.
    package static func make() -> String {
        // No system call: the gateway's identifier generator (unique, unpredictable).
        var bits = IdentifierRandom()
        let high = bits.next()
        let low = UInt32(truncatingIfNeeded: bits.next())
        let digits = Array("0123456789abcdef".utf8)
        var id = Array("chatcmpl-".utf8)
        id.reserveCapacity(id.count + 24)
        for shift in stride(from: 60, through: 0, by: -4) { id.append(digits[Int(truncatingIfNeeded: high >> shift) & 0xF]) }
        for shift in stride(from: 28, through: 0, by: -4) { id.append(digits[Int(truncatingIfNeeded: low >> shift) & 0xF]) }
        return String(decoding: id, as: UTF8.self)
    }
}
