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
        get { Logger.Level.allCases[self.raw.load(ordering: .relaxed)] }
    }

    /// Changes the level of every logger bootstrapped with this control.
    public func set(_ level: Logger.Level) { self.raw.store(Self.index(level), ordering: .relaxed) }

    private static func index(_ level: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: level) ?? 2 }

    /// Bootstraps swift-log once per process: stderr, at this control's level.
    public func bootstrap() {
        LoggingSystem.bootstrap { label in
            ControlledLogHandler(inner: StreamLogHandler.standardError(label: label), control: self)
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

/// A log handler whose level is the shared ``LogLevelControl``'s.
struct ControlledLogHandler: LogHandler {
    var inner: StreamLogHandler
    let control: LogLevelControl

    var logLevel: Logger.Level {
        get { self.control.level }
        set {}
    }

    var metadata: Logger.Metadata {
        get { self.inner.metadata }
        set { self.inner.metadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.inner[metadataKey: key] }
        set { self.inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level >= self.control.level else { return }
        self.inner.log(event: event)
    }
}
