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
    }

    /// Checks `file` as `program` would read it, with the current environment.
    ///
    /// A secret that is set nowhere (neither in the environment nor by its `*File` key) is a note, not
    /// an error: the check is usually run where the secret is not.
    public static func run<T>(
        file: String, program: ConfigStack.Program, schema: ConfigSchema,
        environment: [String: String] = ProcessInfo.processInfo.environment, read: (ConfigReader) throws -> T
    ) -> Result {
        var environment = environment
        var notes: [String] = []
        var warnings: [String] = []
        for _ in 0..<(schema.keys.filter(\.isSecret).count + 1) {
            do {
                let stack = try ConfigStack(
                    program: program, schema: schema, arguments: ["--config", file], environment: environment)
                warnings = stack.unknownEnvironmentWarnings().map { "warning: " + $0 }
                _ = try stack.read(read)
                return Result(
                    ok: true, lines: ["\(file): ok (\(stack.file?.values.count ?? 0) keys set)"] + notes + warnings)
            } catch let errors as ConfigurationErrors {
                return Result(ok: false, lines: errors.errors.map(\.description))
            } catch let error as ConfigurationError {
                if error.code == .missingValue, let spec = schema[error.key], spec.isSecret {
                    let variable = spec.environmentVariable(prefix: program.environmentPrefix)
                    notes.append(
                        "note: \(error.key) is not set here (\(variable) or its *File key); a placeholder was used")
                    environment[variable] = "placeholder-secret-for-config-check"
                    continue
                }
                return Result(ok: false, lines: [error.description] + warnings)
            } catch {
                return Result(ok: false, lines: ["\(file): \(error)"])
            }
        }
        return Result(ok: false, lines: ["\(file): could not be checked"])
    }

    /// Checks every file, printing "ok" lines to stdout and errors to stderr.
    /// - Returns: true when every file is usable.
    public static func report<T>(
        files: [String], program: ConfigStack.Program, schema: ConfigSchema, read: (ConfigReader) throws -> T
    ) -> Bool {
        var allOK = true
        for file in files {
            let result = self.run(file: file, program: program, schema: schema, read: read)
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
