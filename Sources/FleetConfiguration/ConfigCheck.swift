public import Configuration
public import Foundation

/// `fleetgate config check FILE` and `fleet-agent config check FILE`: the file's own problems with
/// file:line:column, then every range and cross-key rule of the program's `init(config:)`.
public enum ConfigCheck {
    /// The outcome of a check.
    public struct Result: Sendable {
        /// True when the file is usable.
        public var ok: Bool
        /// One line per error (file:line:column first when the file is at fault), or notes.
        public var lines: [String]
        /// The configuration errors among ``lines``, in the same order.
        public var errors: [ConfigurationError] = []
    }

    /// Checks `file` as `program` would read it, with the current environment, and reports every error:
    /// those of the file itself (unknown keys, wrong types), then the range and cross-key rules, found
    /// one at a time by reading again with each faulty key set to its default.
    ///
    /// A secret that is set nowhere (neither in the environment nor by its `*File` key) is a note, not
    /// an error: the check is usually run where the secret is not. `arguments` are configuration flags
    /// read above the file (a running `serve`'s, for its reload; none for `config check`).
    public static func run<T>(
        file path: String, program: ConfigStack.Program, schema: ConfigSchema,
        environment: [String: String] = ProcessInfo.processInfo.environment, arguments: [String] = [],
        read: (ConfigReader) throws -> T, notes noteOf: (T) -> [String] = { _ in [] }
    ) -> Result {
        let (file, fileErrors) = ConfigFile.check(
            path: path, schema: schema, environmentPrefix: program.environmentPrefix)
        // An unreadable file or one that is not YAML has nothing more to check.
        if fileErrors.contains(where: { $0.key == "-" }) {
            return Result(ok: false, lines: fileErrors.map(\.description), errors: fileErrors)
        }
        var environment = environment
        var errors = fileErrors.map(\.description)
        var found = fileErrors
        var notes: [String] = []
        var retried = Set<String>()
        var value: T?
        let warnings = ConfigStack(
            program: program, schema: schema, arguments: arguments, environment: environment, file: file
        )
        .unknownEnvironmentWarnings().map { "warning: " + $0 }
        while true {
            let stack = ConfigStack(
                program: program, schema: schema, arguments: arguments, environment: environment, file: file)
            do {
                value = try stack.read(read)
                break
            } catch let error as ConfigurationError {
                guard let spec = schema[error.key], retried.insert(error.key).inserted else {
                    // A key already reported and set to its default here: its new error is this check's
                    // doing (a certificate emptied → "required with privateKeyFile", blamed on an environment
                    // variable the operator never set), not the file's.
                    if schema[error.key] == nil, !errors.contains(error.description) {
                        errors.append(error.description)
                        found.append(error)
                    }
                    break
                }
                let variable = spec.environmentVariable(prefix: program.environmentPrefix)
                if spec.isSecret {
                    environment[variable] = "placeholder-secret-for-config-check"
                } else {
                    environment[variable] = Self.environmentText(spec.defaultValue)
                }
                // A rule across keys: the others back to their defaults too, or the same rule fails again
                // and the check stops before the file's other errors (helper-99).
                for related in error.relatedKeys {
                    guard let other = schema[related], !other.isSecret else { continue }
                    environment[other.environmentVariable(prefix: program.environmentPrefix)] =
                        Self.environmentText(other.defaultValue)
                }
                if error.code == .missingValue, spec.isSecret {
                    notes.append(
                        "note: \(error.key) is not set here (\(variable) or its *File key); a placeholder was used")
                } else {
                    errors.append(error.description)
                    found.append(error)
                }
            } catch {
                errors.append("\(path): \(error)")
                break
            }
        }
        guard errors.isEmpty else { return Result(ok: false, lines: errors + warnings, errors: found) }
        notes += value.map(noteOf) ?? []
        return Result(ok: true, lines: ["\(path): ok (\(file.values.count) keys set)"] + notes + warnings)
    }

    /// A value as an environment variable holds it.
    static func environmentText(_ value: ConfigKeySpec.Value) -> String {
        switch value {
        case .int(let v): "\(v)"
        case .double(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .string(let v): v
        case .strings(let v): v.joined(separator: ",")
        }
    }

    /// Checks every file, printing "ok" lines to stdout and errors to stderr.
    /// - Returns: true when every file is usable.
    /// - Parameter notes: what to say of a configuration that loads (a setting that is valid but likely not
    ///   what a service wants).
    public static func report<T>(
        files: [String], program: ConfigStack.Program, schema: ConfigSchema, read: (ConfigReader) throws -> T,
        notes: (T) -> [String] = { _ in [] }
    ) -> Bool {
        var allOK = true
        for file in files {
            let result = self.run(file: file, program: program, schema: schema, read: read, notes: notes)
            let text = result.lines.joined(separator: "\n") + "\n"
            if result.ok {
                FileHandle.standardOutput.write(Data(text.utf8))
            } else {
                allOK = false
                FileHandle.standardError.write(Data(text.utf8))
            }
        }
        return allOK
    }
}
