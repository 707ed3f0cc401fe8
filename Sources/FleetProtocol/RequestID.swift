/// A request id safe to echo in headers and write into log fields.
///
/// A client's `x-request-id` is kept only when it is 1–128 characters from a token charset —
/// ASCII letters, digits and `-`, `_`, `.`, `:` — so it can never carry spaces, `=`, quotes or
/// control characters into a structured log line (issue #18 row 11: `ok fleet.zone=us` would have
/// been written as forged fields). Anything else is replaced by a generated UUID, never escaped or
/// truncated into something that looks like the client's value.
public struct RequestID: Sendable, Hashable, CustomStringConvertible {
    /// The id.
    public let value: String
    /// Whether the id came from the client's header.
    public let fromClient: Bool

    /// The longest id kept.
    public static let maxLength = 128

    /// The client's id when it is well-formed, otherwise a new one.
    public init(header: String?) {
        if let header, Self.isWellFormed(header) {
            self.value = header
            self.fromClient = true
        } else {
            self.value = IdentifierRandom.uuidString()
            self.fromClient = false
        }
    }

    /// Whether `text` is 1–``maxLength`` characters of the token charset.
    public static func isWellFormed(_ text: String) -> Bool {
        let utf8 = text.utf8
        guard !utf8.isEmpty, utf8.count <= Self.maxLength else { return false }
        return utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                UInt8(ascii: ":"):
                return true
            default:
                return false
            }
        }
    }

    public var description: String { self.value }
}
