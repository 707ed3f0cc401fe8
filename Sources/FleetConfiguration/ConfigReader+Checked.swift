public import Configuration
public import NIOCore

/// Reads with the `required*` methods (the defaults sit in the bottom provider, so a missing key
/// gets its default and a malformed one throws, STYLE.md §4), then checks ranges. Every error is a
/// ``ConfigurationError`` naming the key relative to this reader; ``scoped(_:_:)`` adds the scope.
extension ConfigReader {
    /// Reads the component under `scope` with `body`, naming keys in its errors with the scope prefixed.
    public func scoped<T>(_ scope: String, _ body: (ConfigReader) throws -> T) throws -> T {
        do { return try body(self.scoped(to: ConfigKey(scope))) } catch var error as ConfigurationError {
            error.key = scope + "." + error.key
            error.relatedKeys = error.relatedKeys.map { scope + "." + $0 }
            throw error
        }
    }

    /// An int in `range`.
    public func int(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        let value = try self.converting(key) { try self.requiredInt(forKey: ConfigKey(key)) }
        guard range.contains(value) else {
            throw ConfigurationError(
                .invalidValue, key: key, value: "\(value)", "must be in \(range.lowerBound)…\(range.upperBound)")
        }
        return value
    }

    /// A double in `range`.
    public func double(_ key: String, in range: ClosedRange<Double>) throws -> Double {
        let value = try self.converting(key) { try self.requiredDouble(forKey: ConfigKey(key)) }
        guard range.contains(value) else {
            let text = { (v: Double) in v == v.rounded() && abs(v) < 1e15 ? "\(Int(v))" : "\(v)" }
            throw ConfigurationError(
                .invalidValue, key: key, value: text(value),
                "must be in \(text(range.lowerBound))…\(text(range.upperBound))")
        }
        return value
    }

    /// A duration in seconds (fractions allowed), at least `minimum`.
    public func seconds(_ key: String, minimum: Double = 0.001, maximum: Double = 86_400 * 365) throws -> TimeAmount {
        .nanoseconds(Int64(try self.double(key, in: minimum...maximum) * 1e9))
    }

    /// A duration in seconds where `0` means "off" (nil).
    public func optionalSeconds(_ key: String, maximum: Double = 86_400 * 365) throws -> TimeAmount? {
        let value = try self.double(key, in: 0...maximum)
        return value == 0 ? nil : .nanoseconds(Int64(value * 1e9))
    }

    /// A bool.
    public func bool(_ key: String) throws -> Bool {
        try self.converting(key) { try self.requiredBool(forKey: ConfigKey(key)) }
    }

    /// A string (possibly empty).
    public func string(_ key: String) throws -> String {
        try self.converting(key) { try self.requiredString(forKey: ConfigKey(key)) }
    }

    /// A string, or nil when empty.
    public func nonEmptyString(_ key: String) throws -> String? {
        let value = try self.string(key)
        return value.isEmpty ? nil : value
    }

    /// A list of strings (YAML sequence, comma-separated environment value, repeated flag); empty items dropped.
    public func strings(_ key: String) throws -> [String] {
        try self.converting(key) { try self.requiredStringArray(forKey: ConfigKey(key)) }.filter { !$0.isEmpty }
    }

    /// One of `choices`.
    public func choice(_ key: String, of choices: [String]) throws -> String {
        let value = try self.string(key)
        guard choices.contains(value) else {
            throw ConfigurationError(
                .invalidValue, key: key, value: value, "must be one of \(choices.joined(separator: ", "))")
        }
        return value
    }

    /// A secret string, nil when not set. Its value never appears in an error.
    public func secret(_ key: String) throws -> String? {
        let value = try self.converting(key, isSecret: true) {
            try self.requiredString(forKey: ConfigKey(key), isSecret: true)
        }
        return value.isEmpty ? nil : value
    }

    /// Runs a swift-configuration read, turning its errors into ``ConfigurationError`` for `key` that
    /// show the value as written (its first 80 characters), unless the key is a secret.
    func converting<T>(_ key: String, isSecret: Bool = false, _ read: () throws -> T) throws -> T {
        do { return try read() } catch let error as ConfigurationError { throw error } catch {
            let written = isSecret ? nil : self.string(forKey: ConfigKey(key)).map { String($0.prefix(80)) }
            throw ConfigurationError(.invalidValue, key: key, value: written, "\(error)", cause: error)
        }
    }
}
