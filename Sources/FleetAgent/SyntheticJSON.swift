import FleetProtocol

/// An instance of a JSON Schema, made for a synthetic car's function arguments and structured output:
/// every listed property, each value of its type within its bounds, words for strings — the subset of
/// JSON Schema that OpenAI's structured outputs take (`type`, `properties`, `items`, `enum`, `const`,
/// `anyOf`, local `$ref`s, lengths, ranges, common formats). Deterministic for a seed.
struct SyntheticJSON {
    /// The schema `$ref`s resolve against (`#/$defs/…`, `#/definitions/…`).
    let root: JSONValue
    let seed: UInt64
    /// How deep a schema is followed (a recursive `$ref`); deeper values are `null`.
    static let maxDepth = 8
    /// Values made at most, and items an array gets at most: a schema comes from the request, and ten
    /// properties that each refer to the root would ask for 10⁸ values. Past the budget values are `null`.
    private var budget = 2_048
    static let maxItems = 16

    init(root: JSONValue, seed: UInt64) {
        self.root = root
        self.seed = seed
    }

    mutating func instance(of schema: JSONValue, depth: Int = 0, salt: UInt64 = 0) -> JSONValue {
        guard depth <= Self.maxDepth, self.budget > 0, case .object(let s) = schema else { return .null }
        self.budget -= 1
        let mix = SplitMix64.mix(self.seed &+ salt &* SplitMix64.gamma)
        if let value = s["const"] { return value }
        if case .array(let values)? = s["enum"], !values.isEmpty { return values[Int(mix % UInt64(values.count))] }
        if case .string(let ref)? = s["$ref"] {
            return self.resolve(ref).map { self.instance(of: $0, depth: depth + 1, salt: salt) } ?? .null
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if case .array(let options)? = s[key], let first = options.first {
                return self.instance(of: first, depth: depth + 1, salt: salt)
            }
        }
        switch Self.type(of: s) {
        case "object":
            guard case .object(let properties)? = s["properties"] else { return .object([:]) }
            var fields: [String: JSONValue] = [:]
            for (offset, name) in properties.keys.sorted().enumerated() {
                fields[name] = self.instance(
                    of: properties[name]!, depth: depth + 1, salt: salt &* 31 &+ UInt64(offset) &+ 1)
            }
            return .object(fields)
        case "array":
            let minimum = min(Self.integer(s["minItems"]) ?? 1, Self.maxItems)
            let count = max(min(1, Self.integer(s["maxItems"]) ?? 1), minimum)
            let items = s["items"] ?? .object([:])
            var values: [JSONValue] = []
            for index in 0..<count {
                values.append(self.instance(of: items, depth: depth + 1, salt: salt &* 31 &+ UInt64(index) &+ 7))
            }
            return .array(values)
        case "integer", "number":
            let low = Self.number(s["minimum"]) ?? Self.number(s["exclusiveMinimum"]).map { $0 + 1 } ?? 0
            let high = Self.number(s["maximum"]) ?? Self.number(s["exclusiveMaximum"]).map { $0 - 1 } ?? low + 99
            let span = max(0, (high - low).rounded(.down))
            return .number(low.rounded(.up) + Double(mix % UInt64(min(span, 1e9) + 1)))
        case "boolean":
            return .bool(mix & 1 == 1)
        case "null":
            return .null
        default:
            return .string(self.string(s, mix: mix))
        }
    }

    private func string(_ s: [String: JSONValue], mix: UInt64) -> String {
        switch s["format"] {
        case .string("date")?: return "2026-12-07"
        case .string("date-time")?: return "2026-12-07T12:00:00Z"
        case .string("time")?: return "12:00:00Z"
        case .string("email")?: return "car@example.com"
        case .string("uri")?, .string("url")?: return "https://example.com/fleet"
        case .string("uuid")?: return "00000000-0000-4000-8000-000000000000"
        default: break
        }
        var text = Self.words(seed: mix, count: 1 + Int(mix % 3))
        let minimum = Self.integer(s["minLength"]) ?? 0
        while text.count < minimum { text += " " + Self.words(seed: mix &+ UInt64(text.count), count: 1) }
        if let maximum = Self.integer(s["maxLength"]), text.count > maximum { text = String(text.prefix(maximum)) }
        return text
    }

    /// `count` words of ``SyntheticText`` for `seed`, joined by spaces.
    static func words(seed: UInt64, count: Int) -> String {
        (0..<count).map { SyntheticText.token(seed: seed, index: $0).dropLast() }.joined(separator: " ")
    }

    /// A local reference: `#` or `#/a/b` within ``root``.
    private func resolve(_ ref: String) -> JSONValue? {
        guard ref.hasPrefix("#") else { return nil }
        var value = self.root
        for part in ref.dropFirst().split(separator: "/") {
            guard case .object(let fields) = value, let next = fields[String(part)] else { return nil }
            value = next
        }
        return value
    }

    /// The schema's type: its `type` (the first that is not `null` of a list), else `object` when it
    /// lists properties, else `string`.
    private static func type(of s: [String: JSONValue]) -> String {
        switch s["type"] {
        case .string(let type)?: return type
        case .array(let types)?:
            let names = types.compactMap { if case .string(let t) = $0 { t } else { nil } }
            return names.first { $0 != "null" } ?? names.first ?? "string"
        default: return s["properties"] != nil ? "object" : "string"
        }
    }

    private static func number(_ value: JSONValue?) -> Double? {
        guard case .number(let n)? = value, n.isFinite, abs(n) < 1e15 else { return nil }
        return n
    }

    private static func integer(_ value: JSONValue?) -> Int? {
        Self.number(value).map { Int(max(0, min($0, 10_000))) }
    }
}
