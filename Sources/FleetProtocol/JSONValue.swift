/// Any JSON value: for request fields the gateway passes through without interpreting them
/// (`tools`, `response_format`, …) but must still validate as JSON.
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let value = try? c.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? c.decode(Double.self) {
            self = .number(value)
        } else if let value = try Self.string(c) {
            self = .string(value)
        } else if let value = try? c.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    /// The value as a string; nil when it is not one. A string that is not valid (a lone surrogate
    /// escape) throws, naming it, rather than be reported as the wrong type (helper-96: "expected an
    /// object, but got a string").
    static func string(_ container: any SingleValueDecodingContainer) throws -> String? {
        do { return try container.decode(String.self) } catch DecodingError.typeMismatch { return nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let value): try c.encode(value)
        case .number(let value): try c.encode(value)
        case .string(let value): try c.encode(value)
        case .array(let value): try c.encode(value)
        case .object(let value): try c.encode(value)
        }
    }

    /// `null`, `[]` or `{}`.
    public var isEmptyOrNull: Bool {
        switch self {
        case .null: true
        case .array(let values): values.isEmpty
        case .object(let fields): fields.isEmpty
        default: false
        }
    }

    /// `true`, or a non-zero number.
    public var isTruthy: Bool {
        switch self {
        case .bool(let value): value
        case .number(let value): value != 0
        default: false
        }
    }
}
