import Foundation

/// A field of a request body that decoded but is not served, thrown from a `Decodable` initialiser
/// and answered by ``JSON/decodeRequest(_:from:)`` as a 400 naming it.
///
/// The message is the gateway's own words: it never echoes a value that may hold a prompt's text (a
/// message's content); a short name the client chose, such as a content part's `type`, may be named.
public struct InvalidRequestField: Error, Sendable {
    /// Where the field is, as OpenAI writes it: `messages[0].content[1]`.
    public var param: String
    public var message: String

    /// - Parameters:
    ///   - codingPath: the decoder's path to the field.
    ///   - message: what is wrong; `{param}` in it is replaced by the field's path.
    public init(at codingPath: [any CodingKey], _ message: String) {
        self.param = Self.param(codingPath)
        self.message = message.replacingOccurrences(of: "{param}", with: self.param)
    }

    /// A coding path as OpenAI's `param`: keys joined by dots, array indices in brackets.
    public static func param(_ codingPath: [any CodingKey]) -> String {
        var path = ""
        for key in codingPath {
            if let index = key.intValue {
                path += "[\(index)]"
            } else {
                path += path.isEmpty ? key.stringValue : "." + key.stringValue
            }
        }
        return path
    }
}
