public import Configuration
import Foundation
internal import Yams

/// A YAML configuration file (`fleetgate.yaml`, `fleet-agent.yaml`), checked against a ``ConfigSchema``.
///
/// swift-configuration's YAML provider reports no line numbers and accepts keys nobody reads, so
/// the file is walked here with Yams, keeping each node's mark: an unknown key (a typo), a value of
/// the wrong type, a list where a scalar belongs, a key written twice and a secret written into the
/// file are all errors with file:line:column, every one reported, not just the first. The typed
/// leaves then form the file's layer of the provider stack, and a later range error on a key from
/// the file is reported at the value's position too (``locate(_:)``).
public struct ConfigFile: Sendable {
    /// The path the file was read from.
    public let path: String
    /// The values, by full dotted key.
    public let values: [String: ConfigKeySpec.Value]
    /// Where each value was written.
    public let locations: [String: ConfigurationError.Location]

    /// Reads and checks `path`.
    /// - Parameters:
    ///   - schema: the keys the program reads.
    ///   - environmentPrefix: names the environment variable in the error for a secret found in the file.
    /// - Throws: ``ConfigurationErrors`` with every problem found.
    public static func load(path: String, schema: ConfigSchema, environmentPrefix: String) throws(ConfigurationErrors)
        -> ConfigFile
    {
        let (file, errors) = self.check(path: path, schema: schema, environmentPrefix: environmentPrefix)
        guard errors.isEmpty else { throw ConfigurationErrors(errors) }
        return file
    }

    /// Parses and checks YAML text; `file` names it in errors.
    public static func parse(yaml: String, file: String, schema: ConfigSchema, environmentPrefix: String)
        throws(ConfigurationErrors) -> ConfigFile
    {
        let (file, errors) = self.check(yaml: yaml, file: file, schema: schema, environmentPrefix: environmentPrefix)
        guard errors.isEmpty else { throw ConfigurationErrors(errors) }
        return file
    }

    /// Reads `path` and returns its sound values with every problem found, for `config check`, which
    /// goes on to the range and cross-key rules of those values.
    static func check(path: String, schema: ConfigSchema, environmentPrefix: String) -> (
        ConfigFile, [ConfigurationError]
    ) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            let error = ConfigurationError(
                .unreadableFile, key: "-",
                "cannot read the configuration file '\(path)': \(error.localizedDescription)",
                location: .init(file: path, line: 0, column: 0))
            return (ConfigFile(path: path, values: [:], locations: [:]), [error])
        }
        return self.check(yaml: text, file: path, schema: schema, environmentPrefix: environmentPrefix)
    }

    static func check(yaml: String, file: String, schema: ConfigSchema, environmentPrefix: String) -> (
        ConfigFile, [ConfigurationError]
    ) {
        var walker = Walker(file: file, schema: schema, environmentPrefix: environmentPrefix)
        walker.read(yaml)
        return (ConfigFile(path: file, values: walker.values, locations: walker.locations), walker.errors)
    }

    /// The file as a provider (the layer between the environment and the defaults).
    public func provider() -> InMemoryProvider {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in self.values {
            values[AbsoluteConfigKey(ConfigKey(key))] = ConfigValue(value.content, isSecret: false)
        }
        return InMemoryProvider(name: "file \(self.path)", values: values)
    }

    /// Adds the file position to `error` when its key was set in this file.
    public func locate(_ error: ConfigurationError) -> ConfigurationError {
        var error = error
        if error.location == nil, let location = self.locations[error.key] { error.location = location }
        return error
    }
}

/// Walks the node tree against the schema, collecting errors with their marks.
private struct Walker {
    let file: String
    let leaves: [String: ConfigKeySpec]
    /// Every proper prefix of a key (`limits`, `limits.clientHTTP2`): these must be mappings.
    let branches: Set<String>
    let environmentPrefix: String
    var errors: [ConfigurationError] = []
    var values: [String: ConfigKeySpec.Value] = [:]
    var locations: [String: ConfigurationError.Location] = [:]

    init(file: String, schema: ConfigSchema, environmentPrefix: String) {
        self.file = file
        self.environmentPrefix = environmentPrefix
        self.leaves = Dictionary(schema.keys.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
        var branches = Set<String>()
        for spec in schema.keys {
            var parts = spec.key.split(separator: ".").map(String.init)
            parts.removeLast()
            while !parts.isEmpty {
                branches.insert(parts.joined(separator: "."))
                parts.removeLast()
            }
        }
        self.branches = branches
    }

    func location(_ node: Node?) -> ConfigurationError.Location {
        .init(file: self.file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0)
    }

    mutating func error(
        _ code: ConfigurationError.Code, _ node: Node?, _ key: String, _ value: String?, _ message: String
    ) {
        self.errors.append(ConfigurationError(code, key: key, value: value, message, location: self.location(node)))
    }

    mutating func read(_ yaml: String) {
        let root: Node?
        do { root = try YAMLSyntaxError.compose(yaml) } catch {
            self.errors.append(
                ConfigurationError(
                    .invalidValue, key: "-", "not valid YAML: \(error.message)",
                    location: .init(file: self.file, line: error.line, column: error.column)))
            return
        }
        guard let root else { return }  // an empty file sets nothing
        self.mapping(root, prefix: "")
    }

    mutating func mapping(_ node: Node, prefix: String) {
        guard let mapping = node.mapping else {
            self.error(
                .invalidValue, node, prefix.isEmpty ? "-" : prefix, node.scalar?.string,
                "must be a mapping of keys (\(self.children(of: prefix).joined(separator: ", ")))")
            return
        }
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard let name = keyNode.scalar?.string else {
                self.error(.invalidValue, keyNode, prefix.isEmpty ? "-" : prefix, nil, "keys must be plain strings")
                continue
            }
            let key = prefix.isEmpty ? name : prefix + "." + name
            if !seen.insert(name).inserted {
                self.error(.invalidValue, keyNode, key, nil, "appears twice")
                continue
            }
            if let spec = self.leaves[key] {
                self.leaf(spec, value)
            } else if self.branches.contains(key) {
                self.mapping(value, prefix: key)
            } else {
                self.error(.unknownKey, keyNode, key, nil, self.unknownKeyMessage(name, prefix: prefix))
            }
        }
    }

    mutating func leaf(_ spec: ConfigKeySpec, _ node: Node) {
        if spec.isSecret {
            self.error(
                .invalidValue, node, spec.key, nil,
                "is a secret and is not read from the file: set \(spec.environmentVariable(prefix: self.environmentPrefix)) or put it in a file named by \(spec.key)File"
            )
            return
        }
        let parsed: ConfigKeySpec.Value?
        switch spec.defaultValue {
        case .int: parsed = node.scalar.flatMap { Int.construct(from: $0) }.map { .int($0) }
        case .double: parsed = node.scalar.flatMap { Double.construct(from: $0) }.map { .double($0) }
        case .bool: parsed = node.scalar.flatMap { Bool.construct(from: $0) }.map { .bool($0) }
        case .string: parsed = node.scalar.map { .string($0.string) }
        case .strings:
            if let sequence = node.sequence {
                var items: [String] = []
                for item in sequence {
                    guard let scalar = item.scalar else {
                        self.error(.invalidValue, item, spec.key, nil, "must be a list of strings")
                        return
                    }
                    items.append(scalar.string)
                }
                parsed = .strings(items)
            } else {
                parsed = nil
            }
        }
        guard let parsed else {
            let shown = node.scalar?.string ?? (node.mapping != nil ? "a mapping" : "a list")
            self.error(.invalidValue, node, spec.key, shown, "must be \(Self.article(spec.defaultValue.typeName))")
            return
        }
        self.values[spec.key] = parsed
        self.locations[spec.key] = self.location(node)
    }

    /// The keys allowed directly under `prefix`.
    func children(of prefix: String) -> [String] {
        let start = prefix.isEmpty ? "" : prefix + "."
        var names = Set<String>()
        for key in Array(self.leaves.keys) + Array(self.branches) where key.hasPrefix(start) {
            let rest = key.dropFirst(start.count)
            if !rest.contains(".") { names.insert(String(rest)) }
        }
        return names.sorted()
    }

    func unknownKeyMessage(_ name: String, prefix: String) -> String {
        unknownKeyHint(name, among: self.children(of: prefix))
    }

    static func article(_ type: String) -> String {
        switch type {
        case "int": "an integer"
        case "double": "a number"
        case "bool": "true or false"
        case "string": "a string"
        default: "a list of strings"
        }
    }
}

/// What to say of a key `name` that is none of `known`: the closest one when it is close enough (a typo),
/// else the list. The YAML files' check and the agent's state file say it alike.
public func unknownKeyHint(_ name: String, among known: [String]) -> String {
    if let close = closeKey(to: name, among: known) { return "unknown key; did you mean '\(close)'?" }
    return "unknown key; expected one of \(known.joined(separator: ", "))"
}

/// The one of `known` that `name` is a typo of (close enough by edit distance), if any.
public func closeKey(to name: String, among known: [String]) -> String? {
    let close = known.min {
        editDistance($0.lowercased(), name.lowercased()) < editDistance($1.lowercased(), name.lowercased())
    }
    guard let close, editDistance(close.lowercased(), name.lowercased()) <= max(2, name.count / 3) else { return nil }
    return close
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a)
    let b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
