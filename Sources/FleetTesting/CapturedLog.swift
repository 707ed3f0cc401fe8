public import Logging
public import Synchronization

/// Log lines kept for a test to read, each with its handler's metadata merged under the line's own.
public final class CapturedLog: Sendable {
    public typealias Line = (level: Logger.Level, message: String, metadata: Logger.Metadata)

    /// Every line so far, in order.
    public let lines = Mutex<[Line]>([])

    public init() {}

    /// The lines whose message is `message`.
    public func matching(_ message: String) -> [Line] {
        self.lines.withLock { $0.filter { $0.message == message } }
    }

    /// A value-type handler, as the gateway's is: a logger's copy keeps its own metadata.
    public struct Handler: LogHandler {
        let sink: CapturedLog
        public var metadata: Logger.Metadata = [:]
        public var logLevel: Logger.Level

        public init(sink: CapturedLog, logLevel: Logger.Level = .trace) {
            self.sink = sink
            self.logLevel = logLevel
        }

        public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        public func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { _, line in line }
            self.sink.lines.withLock { $0.append((event.level, event.message.description, merged)) }
        }
    }
}
