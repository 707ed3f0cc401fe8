/// A configuration value that is missing, malformed or out of range.
///
/// The message names the key and the bad value (never a secret's), and, when the value came from
/// the configuration file, the file, line and column it was found at.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// Where in a file the value was written.
    public struct Location: Sendable, Hashable, CustomStringConvertible {
        public var file: String
        public var line: Int
        public var column: Int
        public init(file: String, line: Int, column: Int) {
            self.file = file
            self.line = line
            self.column = column
        }
        public var description: String { "\(self.file):\(self.line):\(self.column)" }
    }

    /// What went wrong.
    public var code: Code
    /// The full dotted key (or the flag / file when no key applies).
    public var key: String
    /// The offending value as written; nil for secrets and missing values.
    public var value: String?
    /// Why it is wrong, and what would be right.
    public var message: String
    /// Where the value was written, when it came from a file.
    public var location: Location?
    /// Where the value came from when not from a file: `flag --limits-max-body-bytes` or
    /// `environment variable FLEETGATE_LIMITS_MAX_BODY_BYTES`.
    public var origin: String?
    /// The other keys of a rule across keys (`outboundLowWatermark` is below `outboundHighWatermark`):
    /// `config check` sets them to their defaults with ``key`` to read on and find the file's other errors.
    public var relatedKeys: [String] = []
    /// The underlying error, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(
        _ code: Code, key: String, value: String? = nil, _ message: String, location: Location? = nil,
        cause: (any Error)? = nil
    ) {
        self.code = code
        self.key = key
        self.value = value
        self.message = message
        self.location = location
        self.cause = cause
    }

    /// An extensible error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable { case invalidValue, unknownKey, missingValue, unreadableFile, notReloadable }
        private let value: Value
        /// A value has the wrong type, is out of range or breaks a rule across keys.
        public static var invalidValue: Self { Self(value: .invalidValue) }
        /// A file key or command-line flag that no component reads (usually a typo).
        public static var unknownKey: Self { Self(value: .unknownKey) }
        /// A required value (a secret, a vehicle id) was not given.
        public static var missingValue: Self { Self(value: .missingValue) }
        /// A file named by the configuration (the file itself, a secret file, a certificate) cannot be read.
        public static var unreadableFile: Self { Self(value: .unreadableFile) }
        /// A reload changed a key that only takes effect on restart.
        public static var notReloadable: Self { Self(value: .notReloadable) }
        public var description: String { "\(self.value)" }
    }

    public var description: String {
        var text = self.location.map { "\($0): " } ?? self.origin.map { "\($0): " } ?? ""
        text += "key '\(self.key)'"
        if let value = self.value { text += ": '\(value)'" }
        text += ": \(self.message)"
        return text
    }
}

/// Several configuration errors at once (a file check reports them all, not just the first).
public struct ConfigurationErrors: Error, Sendable, CustomStringConvertible {
    /// The errors, in file order.
    public var errors: [ConfigurationError]
    /// Wraps `errors`.
    public init(_ errors: [ConfigurationError]) { self.errors = errors }
    public var description: String { self.errors.map(\.description).joined(separator: "\n") }
}
