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
    /// About the most bytes an instance writes: a schema comes from the request, and ten properties that
    /// each refer to the root would ask for 10⁸ values (helper-129: 40,000 such properties in a 1 MiB body
    /// were 573 MB of JSON). Every value, member name and string is charged; past the budget values are
    /// `null` and an object's remaining properties are left out.
    private var budget = 64 * 1024
    static let maxItems = 16
    /// The longest string made for a `minLength`.
    static let maxStringLength = 1_024

    init(root: JSONValue, seed: UInt64) {
        self.root = root
        self.seed = seed
    }

    mutating func instance(of schema: JSONValue, depth: Int = 0, salt: UInt64 = 0) -> JSONValue {
        guard depth <= Self.maxDepth, self.budget > 0, case .object(let s) = schema else { return .null }
        self.budget -= 4
        let mix = SplitMix64.mix(self.seed &+ salt &* SplitMix64.gamma)
        if let value = s["const"] { return self.charged(value) }
        if case .array(let values)? = s["enum"], !values.isEmpty {
            return self.charged(values[Int(mix % UInt64(values.count))])
        }
        if case .string(let ref)? = s["$ref"] {
            return self.resolve(ref).map { self.instance(of: $0, depth: depth + 1, salt: salt) } ?? .null
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if case .array(let options)? = s[key], let first = options.first {
                return self.instance(of: first, depth: depth + 1, salt: salt)
            }
        }
        let type = Self.type(of: s)
        switch type {
        case "object":
            guard case .object(let properties)? = s["properties"] else { return .object([:]) }
            // Sorting the names is charged too: a schema of 40,000 properties is not sorted at every visit.
            self.budget -= properties.count
            guard self.budget > 0 else { return .object([:]) }
            var fields: [String: JSONValue] = [:]
            for (offset, name) in properties.keys.sorted().enumerated() {
                guard self.budget > 0 else { break }
                self.budget -= name.utf8.count + 4  // quotes, colon, comma
                fields[name] = self.instance(
                    of: properties[name]!, depth: depth + 1, salt: salt &* 31 &+ UInt64(offset) &+ 1)
            }
            return .object(fields)
        case "array":
            let minimum = min(Self.integer(s["minItems"]) ?? 0, Self.maxItems)
            let count = max(minimum, min(1, Self.integer(s["maxItems"]) ?? 1))
            let items = s["items"] ?? .object([:])
            var values: [JSONValue] = []
            for index in 0..<count where self.budget > 0 {
                values.append(self.instance(of: items, depth: depth + 1, salt: salt &* 31 &+ UInt64(index) &+ 7))
            }
            return .array(values)
        case "integer", "number":
            return .number(Self.number(in: s, integer: type == "integer", mix: mix))
        case "boolean":
            return .bool(mix & 1 == 1)
        case "null":
            return .null
        default:
            let text = self.string(s, mix: mix)
            self.budget -= text.utf8.count
            return .string(text)
        }
    }

    /// A value of the schema (`const`, `enum`) charged at its size; `null` when it does not fit the budget.
    private mutating func charged(_ value: JSONValue) -> JSONValue {
        let size = Self.size(of: value, limit: self.budget)
        guard size <= self.budget else {
            self.budget = 0
            return .null
        }
        self.budget -= size
        return value
    }

    /// About the bytes `value` writes, counted up to `limit` (the walk stops past it).
    private static func size(of value: JSONValue, limit: Int) -> Int {
        switch value {
        case .null, .bool, .number: return 8
        case .string(let text): return text.utf8.count + 2
        case .array(let values):
            var total = 2
            for value in values where total <= limit { total += Self.size(of: value, limit: limit - total) + 1 }
            return total
        case .object(let fields):
            var total = 2
            for (name, value) in fields where total <= limit {
                total += name.utf8.count + 4 + Self.size(of: value, limit: limit - total)
            }
            return total
        }
    }

    /// A number within the schema's bounds: an integer from the low bound up, or for a `number` with an
    /// exclusive bound the middle of its range.
    private static func number(in s: [String: JSONValue], integer: Bool, mix: UInt64) -> Double {
        let exclusiveLow = Self.number(s["exclusiveMinimum"])
        let exclusiveHigh = Self.number(s["exclusiveMaximum"])
        var low = Self.number(s["minimum"]) ?? exclusiveLow.map { integer ? $0.rounded(.down) + 1 : $0 } ?? 0
        var high = Self.number(s["maximum"]) ?? exclusiveHigh.map { integer ? $0.rounded(.up) - 1 : $0 } ?? low + 99
        if integer || (exclusiveLow == nil && exclusiveHigh == nil) {
            low = low.rounded(.up)
            high = high.rounded(.down)
            guard high > low else { return low }
            return low + Double(mix % UInt64(min(high - low, 1e9) + 1))
        }
        return high > low ? (low + high) / 2 : low
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
        let minimum = min(Self.integer(s["minLength"]) ?? 0, Self.maxStringLength)
        var length = text.utf8.count  // ASCII words: bytes are characters
        while length < minimum {
            let word = " " + Self.words(seed: mix &+ UInt64(length), count: 1)
            text += word
            length += word.utf8.count
        }
        if let maximum = Self.integer(s["maxLength"]), length > maximum { text = String(text.prefix(maximum)) }
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
