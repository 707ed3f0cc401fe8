public import Configuration
import Foundation

extension ConfigReader {
    /// A secret from the environment (`key`, read with `isSecret: true`) or from the file named by
    /// `fileKey`; nil when neither is set. Setting both is an error, so there is one source of truth.
    ///
    /// Surrounding whitespace and the trailing newline of the file are dropped. Errors name the key
    /// and the file's path, never the secret.
    /// - Throws: ``ConfigurationError``.
    public func secret(_ key: String, orFile fileKey: String) throws -> String? {
        let value = try self.secret(key)
        let path = try self.nonEmptyString(fileKey)
        switch (value, path) {
        case (let value?, nil): return value
        case (nil, nil): return nil
        case (.some, .some):
            throw ConfigurationError(
                .invalidValue, key: fileKey, value: path, "set either \(key) or \(fileKey), not both")
        case (nil, let path?):
            let secret = try Self.readSecretFile(path, key: fileKey).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !secret.isEmpty else {
                throw ConfigurationError(.invalidValue, key: fileKey, value: path, "the secret file is empty")
            }
            return secret
        }
    }

    /// Secrets one per line (blank lines and `#` comments skipped) from the environment (comma-separated)
    /// and the file named by `fileKey`, merged.
    /// - Throws: ``ConfigurationError``.
    public func secretList(_ key: String, orFile fileKey: String) throws -> [String] {
        var out = (try self.secret(key) ?? "").split(separator: ",").map {
            $0.trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
        if let path = try self.nonEmptyString(fileKey) {
            out += try Self.readSecretFile(path, key: fileKey).split(whereSeparator: \.isNewline).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        return out
    }

    /// The contents of a secret file; the error names the key and path, never contents.
    static func readSecretFile(_ path: String, key: String) throws -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ConfigurationError(
                .unreadableFile, key: key, value: path, "cannot read the secret file: \(error.localizedDescription)")
        }
    }
}
