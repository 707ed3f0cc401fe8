public import Configuration
public import Foundation

/// The provider stack of one program: command line > environment > YAML file > defaults.
///
/// ```swift
/// let stack = try ConfigStack(program: .fleetgate, schema: GatewayConfiguration.schema, arguments: forwarded)
/// let configuration = try stack.read { try GatewayConfiguration(config: $0) }
/// ```
/// - The command line: every key is a flag (`limits.maxBodyBytes` → `--limits-max-body-bytes`), plus a
///   few short aliases; an unknown flag, a stray value or a secret on the command line is an error.
/// - The environment: `PREFIX_` + the key (`FLEETGATE_LIMITS_MAX_BODY_BYTES`), read by name.
/// - The file: `--config FILE`, else `PREFIX_CONFIG`, else `./<program>.yaml` when it exists
///   (checked by ``ConfigFile`` with file:line:column).
/// - The defaults: the schema's, in an `InMemoryProvider`, so every read is a `required*` read
///   and a malformed value throws instead of silently becoming the default.
public struct ConfigStack: Sendable {
    /// Which program's names to use.
    public struct Program: Sendable, Hashable {
        /// The environment prefix, e.g. `FLEETGATE`.
        public var environmentPrefix: String
        /// The config key that prefix stands for (`fleetgate`; `fleetAgent` for `FLEET_AGENT`).
        public var environmentScope: String
        /// The file looked for in the working directory, e.g. `fleetgate.yaml`.
        public var defaultFile: String
        /// A flag of its own, for the unknown-option hint (helper-130: the agent's cited a gateway key).
        public var exampleFlag = "--limits-max-body-bytes 2048"

        /// The gateway: `FLEETGATE_*`, `fleetgate.yaml`.
        public static let fleetgate = Program(
            environmentPrefix: "FLEETGATE", environmentScope: "fleetgate", defaultFile: "fleetgate.yaml")
        /// The car agent: `FLEET_AGENT_*`, `fleet-agent.yaml`.
        public static let fleetAgent = Program(
            environmentPrefix: "FLEET_AGENT", environmentScope: "fleetAgent", defaultFile: "fleet-agent.yaml",
            exampleFlag: "--policy-min-charge-percent 50")
    }

    /// The program.
    public let program: Program
    /// The keys it reads.
    public let schema: ConfigSchema
    /// The command line as `CommandLineArgumentsProvider` gets it (aliases expanded).
    public let arguments: [String]
    /// The environment.
    public let environment: [String: String]
    /// The file, when one is used.
    public let file: ConfigFile?
    /// The file's path, re-read by ``reloaded()``.
    public let filePath: String?

    /// Builds the stack.
    /// - Parameters:
    ///   - arguments: configuration flags (not the program name or subcommand), e.g. `["--config", "gw.yaml",
    ///     "--limits-max-body-bytes", "2048"]`.
    ///   - environment: the process environment.
    /// - Throws: ``ConfigurationErrors`` for a bad flag or a bad file.
    public init(
        program: Program, schema: ConfigSchema, arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationErrors) {
        var configFile: String?
        let canonical = try Self.canonicalize(arguments, schema: schema, program: program, configFile: &configFile)
        let path = Self.filePath(flag: configFile, program: program, environment: environment)
        self.program = program
        self.schema = schema
        self.arguments = canonical
        self.environment = environment
        self.filePath = path
        self.file = try path.map { path throws(ConfigurationErrors) in
            try ConfigFile.load(path: path, schema: schema, environmentPrefix: program.environmentPrefix)
        }
    }

    /// The file a stack reads: `--config`, else `PREFIX_CONFIG`, else the program's default file if it exists.
    static func filePath(flag: String?, program: Program, environment: [String: String]) -> String? {
        flag ?? environment[program.environmentPrefix + "_CONFIG"]
            ?? (FileManager.default.fileExists(atPath: program.defaultFile) ? program.defaultFile : nil)
    }

    /// Builds the stack as ``init(program:schema:arguments:environment:)`` does; a file with errors of its own
    /// (an unknown key, a wrong type) is refused with every other error `config check` finds in it, the rules
    /// read by `read` included (left open by session 38: a start named those only in a second round).
    /// - Throws: ``ConfigurationErrors``.
    public static func reportingAll<T>(
        program: Program, schema: ConfigSchema, arguments: [String],
        environment: [String: String] = ProcessInfo.processInfo.environment, read: (ConfigReader) throws -> T
    ) throws(ConfigurationErrors) -> ConfigStack {
        do {
            return try ConfigStack(program: program, schema: schema, arguments: arguments, environment: environment)
        } catch {
            var flag: String?
            guard
                let canonical = try? Self.canonicalize(arguments, schema: schema, program: program, configFile: &flag),
                let path = Self.filePath(flag: flag, program: program, environment: environment)
            else { throw error }  // a flag's error: the file was not read
            throw Self.everyError(
                after: error.errors, file: path, program: program, schema: schema, environment: environment,
                arguments: canonical, read: read)
        }
    }

    /// A stack of `file`, `environment` and canonical `arguments` (none for `config check`), for ``ConfigCheck``.
    init(program: Program, schema: ConfigSchema, arguments: [String], environment: [String: String], file: ConfigFile) {
        self.program = program
        self.schema = schema
        self.arguments = arguments
        self.environment = environment
        self.filePath = file.path
        self.file = file
    }

    private init(copying other: ConfigStack, file: ConfigFile?) {
        self.program = other.program
        self.schema = other.schema
        self.arguments = other.arguments
        self.environment = other.environment
        self.filePath = other.filePath
        self.file = file
    }

    /// The same stack with the file read again (a reload).
    public func reloaded() throws(ConfigurationErrors) -> ConfigStack {
        let file = try self.filePath.map { path throws(ConfigurationErrors) in
            try ConfigFile.load(path: path, schema: self.schema, environmentPrefix: self.program.environmentPrefix)
        }
        return ConfigStack(copying: self, file: file)
    }

    /// A reader over the four layers.
    public func reader(accessReporter: (any AccessReporter)? = nil) -> ConfigReader {
        let secrets = Set(
            self.schema.keys.filter(\.isSecret).map { $0.environmentVariable(prefix: self.program.environmentPrefix) })
        var providers: [any ConfigProvider] = [
            CommandLineArgumentsProvider(arguments: ["program"] + self.arguments),
            EnvironmentVariablesProvider(environmentVariables: self.environment, secretsSpecifier: .specific(secrets))
                .prefixKeys(with: ConfigKey(self.program.environmentScope)),
        ]
        if let file = self.file { providers.append(file.provider()) }
        providers.append(self.schema.defaultsProvider())
        return ConfigReader(providers: providers, accessReporter: accessReporter)
    }

    /// Reads a configuration with `body`, adding to an error where its key's value came from (``attribute(_:)``).
    /// - Parameter recorder: takes every value read, when given.
    /// - Throws: ``ConfigurationError``.
    public func read<T>(recorder: ConfigValueRecorder? = nil, _ body: (ConfigReader) throws -> T) throws -> T {
        try self.locating { try body(self.reader(accessReporter: recorder)) }
    }

    /// Reads like ``read(_:)``; when that fails, throws ``ConfigurationErrors`` with the error and every
    /// other one `config check` finds in the file (``everyError(after:read:)``): `serve` and a reload named
    /// one error at a time, so a file with four took three rounds to fix (helper-101).
    public func readReportingAll<T>(recorder: ConfigValueRecorder? = nil, _ body: (ConfigReader) throws -> T) throws
        -> T
    {
        do { return try self.read(recorder: recorder, body) } catch let error as ConfigurationError {
            throw self.everyError(after: [error], read: body)
        }
    }

    /// The file read again, as a reload does (``reloaded()``), then read with `body`; every error of
    /// the file reported at once, as ``readReportingAll(_:)`` does.
    public func rereadReportingAll<T>(recorder: ConfigValueRecorder? = nil, _ body: (ConfigReader) throws -> T) throws
        -> T
    {
        let fresh: ConfigStack
        do { fresh = try self.reloaded() } catch { throw self.everyError(after: error.errors, read: body) }
        return try fresh.readReportingAll(recorder: recorder, body)
    }

    /// `first`, then every other error ``ConfigCheck`` finds in the file with this stack's environment
    /// and flags (none without a file).
    public func everyError<T>(after first: [ConfigurationError], read: (ConfigReader) throws -> T)
        -> ConfigurationErrors
    {
        guard let path = self.filePath else { return ConfigurationErrors(first) }
        // With this stack's flags: a value a flag overrides is not the file's error, and a flag's map is the
        // map the file's endpoints are checked against (helper-102).
        return Self.everyError(
            after: first, file: path, program: self.program, schema: self.schema, environment: self.environment,
            arguments: self.arguments, read: read)
    }

    /// `first`, then every other error ``ConfigCheck`` finds in `path` with `environment` and `arguments`.
    private static func everyError<T>(
        after first: [ConfigurationError], file path: String, program: Program, schema: ConfigSchema,
        environment: [String: String], arguments: [String], read: (ConfigReader) throws -> T
    ) -> ConfigurationErrors {
        let check = ConfigCheck.run(
            file: path, program: program, schema: schema, environment: environment, arguments: arguments, read: read)
        let reported = Set(first.map(\.description))
        return ConfigurationErrors(first + check.errors.filter { !reported.contains($0.description) })
    }

    /// Runs `body` (for example building the server from the configuration), adding to a
    /// ``ConfigurationError`` where its key's value came from (``attribute(_:)``).
    public func locating<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ConfigurationError {
            throw self.attribute(error)
        }
    }

    /// Adds to `error` the layer that supplied its key, in precedence order: the flag, else the
    /// environment variable, else the file's line and column. A value from the environment must not
    /// be reported at the file's line for the same key, which may hold a good value.
    public func attribute(_ error: ConfigurationError) -> ConfigurationError {
        guard error.location == nil, error.origin == nil, let spec = self.schema[error.key] else { return error }
        var error = error
        let variable = spec.environmentVariable(prefix: self.program.environmentPrefix)
        if self.arguments.contains(where: { $0 == spec.flag || $0.hasPrefix(spec.flag + "=") }) {
            // Aliases were rewritten to the flag: name them too, as the operator may have typed one
            // (helper-121: `--etcd` was reported as `--cluster-etcd-endpoints`).
            let aliases = spec.aliases.map { String($0.prefix { $0 != "=" }) }
            error.origin = "flag \(spec.flag)" + (aliases.isEmpty ? "" : " (or \(aliases.joined(separator: ", ")))")
        } else if self.environment[variable] != nil {
            error.origin = "environment variable \(variable)"
        } else if let file = self.file {
            error = file.locate(error)
        }
        return error
    }

    /// Checks the flags and rewrites aliases to the canonical flags; pulls out `--config`.
    static func canonicalize(
        _ arguments: [String], schema: ConfigSchema, program: Program, configFile: inout String?
    ) throws(ConfigurationErrors) -> [String] {
        var flags: [String: ConfigKeySpec] = [:]
        var aliases: [String: (spec: ConfigKeySpec, value: String?)] = [:]
        for spec in schema.keys {
            flags[spec.flag] = spec
            for alias in spec.aliases {
                let parts = alias.split(separator: "=", maxSplits: 1).map(String.init)
                aliases[parts[0]] = (spec, parts.count == 2 ? parts[1] : nil)
            }
        }
        var out: [String] = []
        var errors: [ConfigurationError] = []
        var index = 0
        var expectingValue = false
        /// The flag each single-valued key was given by (a list key may be repeated).
        var given: [String: String] = [:]
        /// Records `error` for a flag; its value, if any, goes with it rather than being reported as a
        /// second error.
        func refuse(_ error: ConfigurationError, inlineValue: String?) {
            errors.append(error)
            if inlineValue == nil, index < arguments.count, !arguments[index].hasPrefix("--") { index += 1 }
            expectingValue = false
        }
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            guard argument.hasPrefix("--") else {
                if expectingValue {
                    out.append(argument)
                } else {
                    errors.append(
                        ConfigurationError(.unknownKey, key: argument, "unexpected argument (values follow a flag)"))
                }
                continue
            }
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            var name = parts[0]
            var inlineValue = parts.count == 2 ? parts[1] : nil
            if name == "--config" {
                if let inlineValue {
                    configFile = inlineValue
                } else if index < arguments.count {
                    configFile = arguments[index]
                    index += 1
                } else {
                    errors.append(ConfigurationError(.missingValue, key: "--config", "needs a file"))
                }
                expectingValue = false
                continue
            }
            var spec = flags[name]
            if spec == nil, let alias = aliases[name] {
                spec = alias.spec
                name = alias.spec.flag
                if let fixed = alias.value { inlineValue = fixed }
            }
            guard let spec else {
                let known = Array(flags.keys) + Array(aliases.keys)
                let close = known.min { editDistance($0, name) < editDistance($1, name) }
                let hint = close.map { editDistance($0, name) <= 3 ? "; did you mean \($0)?" : "" } ?? ""
                refuse(
                    ConfigurationError(
                        .unknownKey, key: name,
                        "unknown option\(hint) (every key of docs/configuration.md is a flag: `\(program.exampleFlag)`)"
                    ), inlineValue: inlineValue)
                continue
            }
            if spec.isSecret {
                refuse(
                    ConfigurationError(
                        .invalidValue, key: spec.key,
                        "is a secret and is not read from the command line (where `ps` shows it): set \(spec.environmentVariable(prefix: program.environmentPrefix)) or use the \(spec.key)File key (--\(ConfigKeySpec.flag(for: spec.key + "File").dropFirst(2)))"
                    ), inlineValue: inlineValue)
                continue
            }
            if case .strings = spec.defaultValue {
            } else if let first = given[spec.key] {
                // swift-configuration's own error for this ("failed to convert to type string", naming
                // the flag as a key) did not say what was wrong.
                refuse(
                    ConfigurationError(
                        .invalidValue, key: spec.key,
                        "given twice on the command line (\(first) and \(parts[0])); give it once"),
                    inlineValue: inlineValue)
                continue
            } else {
                given[spec.key] = parts[0]
            }
            out.append(inlineValue.map { "\(name)=\($0)" } ?? name)
            expectingValue = inlineValue == nil
        }
        guard errors.isEmpty else { throw ConfigurationErrors(errors) }
        return out
    }
}
