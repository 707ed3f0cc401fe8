public import Configuration

/// One configuration key: its full dotted name, type, default, meaning, and where it may come from.
///
/// The key tables (``ConfigSchema``) are the single list of what a program reads. They build the
/// bottom `InMemoryProvider` of defaults, check the YAML file and the command line, and generate
/// `docs/configuration.md`; a test proves every key in them is read and every key read is in them.
public struct ConfigKeySpec: Sendable, Hashable {
    /// A value of a key (also its type).
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case int(Int)
        case double(Double)
        case bool(Bool)
        case string(String)
        case strings([String])

        /// The type's name as the docs and errors spell it.
        public var typeName: String {
            switch self {
            case .int: "int"
            case .double: "double"
            case .bool: "bool"
            case .string: "string"
            case .strings: "string list"
            }
        }

        /// The value as written in YAML.
        public var description: String {
            switch self {
            case .int(let v): "\(v)"
            case .double(let v): v == v.rounded() && abs(v) < 1e15 ? "\(Int(v))" : "\(v)"
            case .bool(let v): "\(v)"
            case .string(let v): v.isEmpty ? "\"\"" : v
            case .strings(let v): "[" + v.joined(separator: ", ") + "]"
            }
        }

        var content: ConfigContent {
            switch self {
            case .int(let v): .int(v)
            case .double(let v): .double(v)
            case .bool(let v): .bool(v)
            case .string(let v): .string(v)
            case .strings(let v): .stringArray(v)
            }
        }
    }

    /// The full dotted key, e.g. `limits.clientHTTP2.maxConcurrentStreams`.
    public var key: String
    /// The default; its case is the key's type.
    public var defaultValue: Value
    /// One line for the docs.
    public var summary: String
    /// A secret: read with `isSecret: true`, accepted only from the environment (never from the file or
    /// the command line, where `ps` and config repositories would show it).
    public var isSecret: Bool
    /// Short command-line spellings kept for operators' scripts (`--client-port`).
    public var aliases: [String]

    /// Creates a key.
    public init(_ key: String, _ defaultValue: Value, _ summary: String, secret: Bool = false, aliases: [String] = []) {
        self.key = key
        self.defaultValue = defaultValue
        self.summary = summary
        self.isSecret = secret
        self.aliases = aliases
    }

    /// An int key.
    public static func int(_ key: String, _ value: Int, _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .int(value), summary, aliases: aliases)
    }

    /// A double key.
    public static func double(_ key: String, _ value: Double, _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .double(value), summary, aliases: aliases)
    }

    /// A bool key.
    public static func bool(_ key: String, _ value: Bool, _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .bool(value), summary, aliases: aliases)
    }

    /// A string key.
    public static func string(_ key: String, _ value: String, _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .string(value), summary, aliases: aliases)
    }

    /// A string-list key (YAML sequence; comma-separated in the environment; repeatable on the command line).
    public static func strings(_ key: String, _ value: [String], _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .strings(value), summary, aliases: aliases)
    }

    /// A secret string key (environment only; empty by default).
    /// - Parameter aliases: old flags that once carried the secret, so using one says where it went.
    public static func secret(_ key: String, _ summary: String, aliases: [String] = []) -> Self {
        Self(key, .string(""), summary, secret: true, aliases: aliases)
    }

    /// The command-line flag swift-configuration's `CommandLineArgumentsProvider` reads for this key.
    public var flag: String { Self.flag(for: self.key) }

    /// The environment variable for this key under `prefix` (e.g. `FLEETGATE`).
    public func environmentVariable(prefix: String) -> String {
        Self.environmentVariable(for: self.key, prefix: prefix)
    }

    /// `limits.maxBodyBytes` → `--limits-max-body-bytes` (swift-configuration's CLI key encoding).
    public static func flag(for key: String) -> String {
        "--"
            + key.split(separator: ".").map { splitCamelCase(String($0), separator: "-").lowercased() }
            .joined(separator: "-")
    }

    /// `limits.maxBodyBytes` → `FLEETGATE_LIMITS_MAX_BODY_BYTES` (swift-configuration's environment encoding).
    public static func environmentVariable(for key: String, prefix: String) -> String {
        ([prefix] + key.split(separator: ".").map { splitCamelCase(String($0), separator: "_") })
            .joined(separator: "_").uppercased()
    }

    private static func splitCamelCase(_ component: String, separator: Character) -> String {
        var out = ""
        var previous: Character?
        for c in component {
            if let p = previous, p.isLowercase, c.isUppercase { out.append(separator) }
            out.append(c)
            previous = c
        }
        return out
    }
}
