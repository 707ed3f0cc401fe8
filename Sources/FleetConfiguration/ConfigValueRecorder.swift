public import Configuration
import Synchronization

/// Records the value each key had when a configuration was read, so two reads can say which keys
/// changed (a reload names them: helper-101, "Configuration reloaded" said nothing of what it took).
///
/// Values are kept only to compare them; secret ones are never rendered by anything here.
public final class ConfigValueRecorder: AccessReporter, Sendable {
    private let values = Mutex<[String: ConfigValue]>([:])

    /// An empty recorder.
    public init() {}

    /// Takes one access's value; a key read without a value is left out.
    public func report(_ event: AccessEvent) {
        guard case .success(let value?) = event.result else { return }
        let key = event.metadata.key.components.joined(separator: ".")
        self.values.withLock { $0[key] = value }
    }

    /// What was recorded: every key read with a value, by its dotted name.
    public var recorded: ConfigValues { ConfigValues(self.values.withLock { $0 }) }
}

/// The values of the keys one read of a configuration found (``ConfigValueRecorder``).
public struct ConfigValues: Sendable, Hashable {
    private var values: [String: ConfigValue]

    /// Values by dotted key.
    public init(_ values: [String: ConfigValue] = [:]) { self.values = values }

    /// Whether nothing was recorded (a configuration built in code, not read).
    public var isEmpty: Bool { self.values.isEmpty }

    /// The keys whose value differs from `other`'s, set in one and not the other included, sorted.
    public func changedKeys(since other: ConfigValues) -> [String] {
        Set(self.values.keys).union(other.values.keys).filter { self.values[$0] != other.values[$0] }.sorted()
    }
}
