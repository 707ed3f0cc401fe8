public import NIOCore

/// A car's rejection of a request (its runtime's 4xx) in the form an app gets it. The car chooses
/// every byte of what it sends, so nothing of it is passed through whole (helper-98: a car's 400
/// reached the client as it came, with its own fields): the body is rebuilt in OpenAI's shape from
/// the code and parameter, kept only when they look like codes and field paths, and the runtime's
/// message, marked as the runtime's, at most ``maxMessageCharacters`` printable characters with no
/// markup. Central's and another replica's rejections are the operator's and pass as they are.
public enum RuntimeRejection {
    /// The most of the runtime's message kept.
    public static let maxMessageCharacters = 200

    /// The client's body for a car's rejection `body`.
    public static func body(from body: ByteBuffer) -> ByteBuffer {
        let detail = try? JSON.decode(APIErrorBody.self, from: body.readableBytesView).error
        let code = detail?.code.flatMap { Self.isCode($0) ? $0 : nil } ?? "rejected"
        let param = detail?.param.flatMap { Self.isFieldPath($0) ? $0 : nil }
        var message = "The model runtime serving this request rejected it (\(code))."
        if let said = detail.map({ Self.plainText($0.message) }), !said.isEmpty {
            message += " The runtime said: \(said)"
        }
        return JSON.buffer(APIErrorBody(message: message, type: "invalid_request_error", code: code, param: param))
    }

    /// `[a-z0-9_]`, 1 to 64 characters: what OpenAI's codes look like.
    static func isCode(_ value: String) -> Bool {
        (1...64).contains(value.utf8.count)
            && value.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5F }
    }

    /// A request field's path (`messages[0].content`): letters, digits, `_`, `.`, `[`, `]`; 1 to 64.
    static func isFieldPath(_ value: String) -> Bool {
        (1...64).contains(value.utf8.count)
            && value.utf8.allSatisfy {
                (0x61...0x7A).contains($0) || (0x41...0x5A).contains($0) || (0x30...0x39).contains($0)
                    || [0x5F, 0x2E, 0x5B, 0x5D].contains($0)
            }
    }

    /// The message's printable characters, without `<`, `>` or control characters, at most
    /// ``maxMessageCharacters``, with its whitespace runs made one space: how a car's words are quoted
    /// to an app (here, and in a 502's "last upstream error").
    package static func plainText(_ text: String) -> String {
        var out = ""
        var count = 0
        var space = false
        for scalar in text.unicodeScalars where count < Self.maxMessageCharacters {
            if scalar.properties.isWhitespace || scalar.value < 0x20 || scalar.value == 0x7F {
                space = !out.isEmpty
                continue
            }
            guard scalar != "<", scalar != ">", scalar.properties.generalCategory != .format else { continue }
            if space {
                out.unicodeScalars.append(" ")
                count += 1
                space = false
            }
            out.unicodeScalars.append(scalar)
            count += 1
        }
        return out
    }
}
