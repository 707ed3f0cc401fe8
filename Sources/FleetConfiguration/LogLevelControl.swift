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
///
/// It keeps the logger's metadata itself and hands it to `StreamLogHandler` with each event
/// (the event's own keys win, as they do in `StreamLogHandler`): `StreamLogHandler` renders its
/// metadata to text on every change, and a request sets three keys (its trace and span) on a
/// logger that, at the production level, writes one line — the audit line — or none.
struct ControlledLogHandler: LogHandler {
    var inner: StreamLogHandler
    let control: LogLevelControl
    var metadata: Logger.Metadata = [:]

    init(inner: StreamLogHandler, control: LogLevelControl) {
        self.inner = inner
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
        guard !self.metadata.isEmpty else { return self.inner.log(event: event) }
        var event = event
        // The event's keys win, as in StreamLogHandler. (Its metadata provider, which none is
        // bootstrapped with, would rank between the two there and above both here.)
        event.metadata = self.metadata.merging(event.metadata ?? [:]) { _, explicit in explicit }
        self.inner.log(event: event)
    }
}
