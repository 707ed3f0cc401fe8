/// An error of the HTTP/2 connection API.
public struct HTTP2ConnectionError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var code: Code
    /// Detail for people.
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    /// The kind of failure.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable { case notAcceptingStreams, pingTimeout }
        private let value: Value
        /// The connection is closing or at its stream limit; use another connection.
        public static var notAcceptingStreams: Self { Self(value: .notAcceptingStreams) }
        /// A PING was not answered in time.
        public static var pingTimeout: Self { Self(value: .pingTimeout) }
        public var description: String { "\(self.value)" }
    }

    public var description: String { "\(self.code): \"\(self.message)\"" }
}
