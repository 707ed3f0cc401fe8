public import Configuration

/// The keys a program reads, in the order its docs list them.
///
/// Each configuration type publishes its keys unscoped (`maxConcurrentStreams`) next to its
/// `init(config:)`; the caller scopes them as it scopes the reader:
/// ```swift
/// ConfigSchema(scope: "limits.clientHTTP2", HTTP2Configuration.configKeys(defaults: .client))
/// ```
public struct ConfigSchema: Sendable, Hashable {
    /// The keys.
    public var keys: [ConfigKeySpec]

    /// A schema of `keys`.
    public init(_ keys: [ConfigKeySpec]) { self.keys = keys }

    /// `schema`'s keys under `scope` (`"limits"` + `maxBodyBytes` → `limits.maxBodyBytes`).
    public init(scope: String, _ schema: ConfigSchema) {
        self.keys = schema.keys.map { spec in
            var spec = spec
            spec.key = scope + "." + spec.key
            return spec
        }
    }

    /// The schemas one after another.
    public init(_ parts: [ConfigSchema]) { self.keys = parts.flatMap(\.keys) }

    /// The key named `key`, if any.
    public subscript(key: String) -> ConfigKeySpec? { self.keys.first { $0.key == key } }

    /// The defaults, as the bottom provider of the stack.
    public func defaultsProvider() -> InMemoryProvider {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for spec in self.keys {
            values[AbsoluteConfigKey(ConfigKey(spec.key))] = ConfigValue(
                spec.defaultValue.content, isSecret: spec.isSecret)
        }
        return InMemoryProvider(name: "defaults", values: values)
    }

    /// A Markdown table of every key: name, type, default, environment variable, meaning.
    public func markdownTable(environmentPrefix: String) -> String {
        var lines = [
            "| key | type | default | environment | meaning |",
            "|---|---|---|---|---|",
        ]
        for spec in self.keys {
            let type = spec.isSecret ? "string, secret" : spec.defaultValue.typeName
            let def = spec.isSecret ? "(none)" : "`\(spec.defaultValue)`"
            lines.append(
                "| `\(spec.key)` | \(type) | \(def) | `\(spec.environmentVariable(prefix: environmentPrefix))` | \(spec.summary) |"
            )
        }
        return lines.joined(separator: "\n")
    }
}
