/// An error of the gateway's set-up.
public struct GatewayError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable { case invalidConfiguration, bindFailed }
        private let value: Value
        /// A configuration value is out of range or malformed; the message names the key and value.
        public static var invalidConfiguration: Self { Self(value: .invalidConfiguration) }
        /// A listener could not bind.
        public static var bindFailed: Self { Self(value: .bindFailed) }
        public var description: String { "\(self.value)" }
    }

    public var description: String { "\(self.code): \"\(self.message)\"" }
}
