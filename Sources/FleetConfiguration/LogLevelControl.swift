public import Configuration
public import Logging
import Synchronization

/// The process's log level, changeable while it runs (a reload), shared by every logger `main` makes.
public final class LogLevelControl: Sendable {
    private let raw: Atomic<Int>

    /// Starts at `level`.
    public init(_ level: Logger.Level) { self.raw = Atomic(Self.index(level)) }

    /// The current level.
    public var level: Logger.Level {
        get { Self.levels[self.raw.load(ordering: .relaxed)] }
    }

    /// `Logger.Level.allCases` once: the getter builds an array, and the level is read on every log call.
    private static let levels = Logger.Level.allCases

    /// Changes the level of every logger bootstrapped with this control.
    public func set(_ level: Logger.Level) { self.raw.store(Self.index(level), ordering: .relaxed) }

    private static func index(_ level: Logger.Level) -> Int { Self.levels.firstIndex(of: level) ?? 2 }

    /// Bootstraps swift-log once per process: stderr, at this control's level.
    public func bootstrap() {
        LoggingSystem.bootstrap { label in
            ControlledLogHandler(label: label, control: self)
        }
    }

    /// The level names `logging.level` accepts.
    public static var levelNames: [String] { Logger.Level.allCases.map(\.rawValue) }
}

extension ConfigReader {
    /// A log level; a typo is an error, not `info`.
    public func logLevel(_ key: String) throws -> Logger.Level {
        Logger.Level(rawValue: try self.choice(key, of: LogLevelControl.levelNames))!
    }
}

/// A log handler whose level is the shared ``LogLevelControl``'s, writing `StreamLogHandler`'s
/// lines to standard error (``LogLine``).
///
/// It keeps the logger's metadata as it is and renders it with each line: a request sets three keys
/// (its trace and span) on a logger that, at the production level, writes one line — the audit
/// line — or none, so rendering on every change (as `StreamLogHandler` does) would be wasted.
struct ControlledLogHandler: LogHandler {
    let label: String
    let control: LogLevelControl
    var metadata: Logger.Metadata = [:]

    init(label: String, control: LogLevelControl) {
        self.label = label
        self.control = control
    }

    var logLevel: Logger.Level {
        get { self.control.level }
        set {}
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level >= self.control.level else { return }
        LogLine.writeToStandardError(
            LogLine.bytes(timestamp: LogLine.timestamp(), label: self.label, base: self.metadata, event: event))
    }

    /// Writes a line whose metadata is `sortedFields` (``LogLine/bytes(timestamp:label:base:level:sortedFields:source:message:)``).
    func log(level: Logger.Level, message: String, sortedFields: [(key: String, value: String)], source: String) {
        guard level >= self.control.level else { return }
        LogLine.writeToStandardError(
            LogLine.bytes(
                timestamp: LogLine.timestamp(), label: self.label, base: self.metadata, level: level,
                sortedFields: sortedFields, source: source, message: message))
    }
}
