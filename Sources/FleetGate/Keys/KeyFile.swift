internal import FleetConfiguration
import Foundation
internal import Yams

/// Reads the application key file (YAML, `docs/operations.md`):
///
/// ```yaml
/// keys:
///   - name: team-a                 # metrics label: letters, digits, - _ . (≤ 64)
///     sha256: 9f86d081…            # hex SHA-256 of the key: printf %s "$KEY" | sha256sum
///     models: [fleet-8b]           # optional; default: every model
///     route: any                   # any (cars or central, default) | central (central only)
///     requestsPerSecond: 5         # optional token bucket; default: unlimited
///     burst: 10                    # optional bucket size; default: max(1, requestsPerSecond)
///     tokensPerMinute: 20000       # optional (prompt + completion tokens); default: unlimited
///     concurrentStreams: 4         # optional; default: unlimited
/// ```
///
/// Every problem is reported with file:line:column, the key and the value; nothing is half-loaded.
package enum KeyFile {
    /// At most this many keys (they are metrics labels, so the label set stays bounded).
    package static let maxKeys = 10_000

    package static func load(path: String) throws(KeyFileError) -> [KeyPolicy] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KeyFileError(issues: ["\(path):0:0: cannot read the file: \(error.localizedDescription)"])
        }
        return try self.parse(yaml: text, file: path)
    }

    package static func parse(yaml: String, file: String) throws(KeyFileError) -> [KeyPolicy] {
        var issues: [String] = []
        func issue(_ node: Node?, _ key: String, _ value: String?, _ message: String) {
            let mark = node?.mark
            issues.append(
                "\(file):\(mark?.line ?? 0):\(mark?.column ?? 0): key '\(key)'"
                    + (value.map { ": '\($0.prefix(80))'" } ?? "") + ": \(message)")
        }
        let root: Node?
        do { root = try YAMLSyntaxError.compose(yaml) } catch {
            throw KeyFileError(issues: ["\(file):\(error.line):\(error.column): not valid YAML: \(error.message)"])
        }
        guard let top = root?.mapping, top.count == 1, let list = top["keys"]?.sequence else {
            throw KeyFileError(issues: ["\(file):1:1: key 'keys': the file must hold one key, 'keys', a list"])
        }
        guard list.count <= Self.maxKeys else {
            throw KeyFileError(issues: ["\(file):1:1: key 'keys': more than \(Self.maxKeys) keys"])
        }
        let allowed: Set<String> = [
            "name", "sha256", "models", "route", "requestsPerSecond", "burst", "tokensPerMinute", "concurrentStreams",
        ]
        var policies: [KeyPolicy] = []
        var names = Set<String>(), hashes = Set<[UInt8]>()
        for (index, item) in list.enumerated() {
            let path = "keys[\(index)]"
            guard let entry = item.mapping else {
                issue(item, path, item.scalar?.string, "must be a mapping")
                continue
            }
            for (k, v) in entry {
                let key = k.scalar?.string ?? "?"
                if !allowed.contains(key) { issue(k, "\(path).\(key)", v.scalar?.string, "unknown key") }
            }
            func number(_ key: String, _ range: ClosedRange<Double>) -> Double? {
                guard let node = entry[key] else { return nil }
                guard let text = node.scalar?.string, let value = Double(text), range.contains(value) else {
                    issue(node, "\(path).\(key)", node.scalar?.string, "must be a number in \(range)")
                    return nil
                }
                return value
            }
            let name = entry["name"]?.scalar?.string ?? ""
            if !Self.isLabel(name) {
                issue(entry["name"] ?? item, "\(path).name", name, "must be 1–64 of letters, digits, '-', '_', '.'")
            } else if !names.insert(name).inserted {
                issue(entry["name"], "\(path).name", name, "a second key with this name")
            }
            let hex = entry["sha256"]?.scalar?.string ?? ""
            let hash = Self.bytes(hex: hex)
            if hash == nil {
                issue(entry["sha256"] ?? item, "\(path).sha256", hex, "must be 64 hex digits (SHA-256 of the key)")
            } else if !hashes.insert(hash!).inserted {
                issue(entry["sha256"], "\(path).sha256", hex, "a second entry for the same key")
            }
            var models: Set<String>?
            if let node = entry["models"] {
                let list = node.sequence?.compactMap { $0.scalar?.string }
                if list == nil || list!.isEmpty || list!.count != node.sequence?.count {
                    issue(node, "\(path).models", node.scalar?.string, "must be a non-empty list of model names")
                } else {
                    models = Set(list!)
                }
            }
            var route = KeyPolicy.Route.any
            if let node = entry["route"] {
                if let text = node.scalar?.string, let value = KeyPolicy.Route(rawValue: text) {
                    route = value
                } else {
                    issue(node, "\(path).route", node.scalar?.string, "must be 'any' or 'central'")
                }
            }
            let rps = number("requestsPerSecond", 0.001...1_000_000)
            let burst = number("burst", 1...1_000_000)
            let tpm = number("tokensPerMinute", 1...1_000_000_000)
            let streams = number("concurrentStreams", 1...1_000_000)
            if let streams, streams != streams.rounded() {
                issue(entry["concurrentStreams"], "\(path).concurrentStreams", "\(streams)", "must be a whole number")
            }
            guard let hash else { continue }
            policies.append(
                KeyPolicy(
                    name: name, sha256: hash, models: models, route: route, requestsPerSecond: rps, burst: burst,
                    tokensPerMinute: tpm, concurrentStreams: streams.map { Int($0) }))
        }
        guard issues.isEmpty else { throw KeyFileError(issues: issues) }
        return policies
    }

    static func isLabel(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64
            && text.utf8.allSatisfy { b in
                (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
                    || b == 0x5F || b == 0x2E
            }
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.lowercased().utf8)
        guard digits.count == 64 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: 64, by: 2) {
            guard let high = Self.nibble(digits[i]), let low = Self.nibble(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

/// Why a key file was refused: every problem, one per line, each naming file:line:column, key and value.
public struct KeyFileError: Error, Sendable, CustomStringConvertible {
    public var issues: [String]
    public var description: String { self.issues.joined(separator: "\n") }
}
