import Foundation

/// A request body whose integer members may hold a number Foundation cannot read as one.
///
/// Foundation's `JSONDecoder` reports `"n": 1.5` (or `1e30`) for an `Int` as "not valid JSON" with no
/// path, so the app heard that its whole body could not be parsed — a Python app that computed
/// `max_tokens` as a float could not tell why (helper-60). A type that lists its top-level integer
/// members lets ``JSON/decodeRequest(_:from:)`` name the member instead.
public protocol IntegerMembers {
    /// The top-level members decoded as `Int`, by their JSON names.
    static var integerMembers: [String] { get }
}

/// OpenAI's wording for a member of the wrong type: "Invalid type for 'n': expected an integer, but got
/// a decimal number instead." Never the value itself (it may be a prompt's text).
package enum RequestTypeError {
    /// The message for a `DecodingError.typeMismatch`: what was expected, and what came when
    /// Foundation's description says (it is not API; without it, only what was expected).
    package static func message(param: String, expected: Any.Type, description: String) -> String {
        let got = Self.found(in: description).map { ", but got \($0) instead" } ?? ""
        return "Invalid type for '\(param)': expected \(Self.name(of: expected))\(got)."
    }

    /// The first of `names` whose value in the body `object` is a number that is no `Int`: a decimal,
    /// or beyond its range. The message and the member's name.
    package static func integerMember(
        in object: [String: JSONValue], names: [String]
    ) -> (message: String, param: String)? {
        for name in names {
            guard case .number(let value) = object[name] else { continue }
            if value.rounded() != value {
                return ("Invalid type for '\(name)': expected an integer, but got a decimal number instead.", name)
            }
            if Double(Int.min) > value || value >= Double(Int.max) {
                return ("Invalid value for '\(name)': the number is out of range.", name)
            }
        }
        return nil
    }

    static func name(of type: Any.Type) -> String {
        switch type {
        case is any FixedWidthInteger.Type: return "an integer"
        case is any BinaryFloatingPoint.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "a boolean"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "an array" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return "a different type"
        }
    }

    /// "Expected to decode Int but found a string instead." → "a string".
    static func found(in description: String) -> String? {
        guard let start = description.range(of: "but found "),
            let end = description.range(of: " instead", range: start.upperBound..<description.endIndex)
        else { return nil }
        switch description[start.upperBound..<end.lowerBound] {
        case "bool": return "a boolean"
        case "number": return "a number"
        case "a string": return "a string"
        case "an array": return "an array"
        case "a dictionary": return "an object"
        case "null": return "null"
        default: return nil
        }
    }
}
