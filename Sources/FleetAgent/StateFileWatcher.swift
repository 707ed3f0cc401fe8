import FleetConfiguration
import FleetProtocol
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// Watches a JSON file with the car's telemetry and applies changes to ``AgentState``.
///
/// The file holds any of `plugged_in` (bool), `charge_percent` (0–100; a fraction counts down: 63.5 is 63), `link`
/// (`wifi|cellular|satellite|ethernet`), `departing_in_s` (seconds, 0 or more; null, absent or -1: not
/// departing, as in the configuration — helper-130: -1 meant "leaving now" here) and `uplink_mbps`. The
/// simulator and load tests drive cars by rewriting it. A malformed file — a key that is a typo of one of
/// these included (helper-130: `pluged_in` was ignored in silence) — is logged with its path and ignored;
/// the last good state stays. A key that is no typo of one (newer car software's `odometer_km`) is
/// ignored with one warning a key set, and the rest applied (helper-132: refusing it kept a stale state).
public struct StateFileWatcher: Service {
    let path: String
    let state: AgentState
    let interval: Duration
    let logger: Logger
    /// The unknown keys last warned of.
    private let warned = WarnedKeys()
    /// The file's stamp (``FileStamp/attributes(of:)``: resolved path, inode, size, modification time) when
    /// ``apply()`` last read it: ``run()`` reads it again only once it changes (helper-137: the agent's read
    /// at start and the watcher's first pass warned twice of one file).
    private let lastRead = ReadStamp()

    public init(path: String, state: AgentState, interval: Duration = .milliseconds(250), logger: Logger) {
        self.path = path
        self.state = state
        self.interval = interval
        self.logger = logger
    }

    /// The keys the file may hold.
    static let keys = ["plugged_in", "charge_percent", "link", "departing_in_s", "uplink_mbps"]

    struct FileState: Decodable {
        var pluggedIn: Bool?
        /// A number: a battery's own figure often has a fraction (63.5 counts as 63).
        var chargePercent: Double?
        var link: LinkType?
        /// A number, whole: decoded as one so that 1.5 is told as such, not as text that is not JSON.
        var departingSeconds: Double?
        var uplinkMbps: Double?
        /// The keys that are none of these, sorted: read in the same pass.
        var unknownKeys: [String]
        enum CodingKeys: String, CodingKey {
            case pluggedIn = "plugged_in"
            case chargePercent = "charge_percent"
            case link
            case departingSeconds = "departing_in_s"
            case uplinkMbps = "uplink_mbps"
        }
        /// Any key of the object.
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.pluggedIn = try c.decodeIfPresent(Bool.self, forKey: .pluggedIn)
            self.chargePercent = try c.decodeIfPresent(Double.self, forKey: .chargePercent)
            self.link = try c.decodeIfPresent(LinkType.self, forKey: .link)
            self.departingSeconds = try c.decodeIfPresent(Double.self, forKey: .departingSeconds)
            self.uplinkMbps = try c.decodeIfPresent(Double.self, forKey: .uplinkMbps)
            self.unknownKeys = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
                .filter { CodingKeys(rawValue: $0) == nil }.sorted()
        }
    }

    /// Reads the file once and applies it. Throws when it cannot be read or parsed.
    /// - Throws: ``AgentConfigError`` saying why, without the path (the caller names it).
    public func apply() throws {
        try self.apply(stamp: FileStamp.attributes(of: self.path))
    }

    /// ``apply()`` of the file as `stamp` (taken before the read: a write between the two is read again
    /// at the next pass, not missed) says it is.
    private func apply(stamp: String) throws {
        self.lastRead.stamp.withLock { $0 = stamp }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: self.path)) } catch {
            throw AgentConfigError(message: "cannot be read: \(FileErrorReason.describe(error))")
        }
        let file: FileState
        do { file = try JSONDecoder().decode(FileState.self, from: data) } catch {
            throw AgentConfigError(
                message: "\(Self.describe(error)) (a JSON object of any of \(Self.keys.joined(separator: ", ")))")
        }
        let unknown = file.unknownKeys
        if let typo = unknown.first(where: { closeKey(to: $0, among: Self.keys) != nil }) {
            throw AgentConfigError(message: "key '\(typo.prefix(64))': \(unknownKeyHint(typo, among: Self.keys))")
        }
        if !unknown.isEmpty, self.warned.changed(to: unknown) {
            let keys = unknown.prefix(8).map { String($0.prefix(64)) }.joined(separator: ",")
            self.logger.warning(
                "State file keys this agent does not know are ignored",
                metadata: ["fleet.file": "\(self.path)", "fleet.keys": "\(keys)"])
        }
        // The gateway's ranges (FleetStatus.problem(with:)): a value outside them would close the tunnel.
        if let seconds = file.departingSeconds {
            let text = Self.text(seconds)
            guard seconds <= Double(FleetStatus.maxDepartingSeconds) else {
                throw AgentConfigError(
                    message: "key 'departing_in_s': \(text) is over \(FleetStatus.maxDepartingSeconds)")
            }
            guard Int(exactly: seconds) != nil else {
                throw AgentConfigError(message: "key 'departing_in_s': \(text) is not a whole number of seconds")
            }
            guard seconds >= -1 else {
                throw AgentConfigError(
                    message:
                        "key 'departing_in_s': \(text): seconds until the car drives off (0: now); null, absent or -1: not departing"
                )
            }
        }
        if let charge = file.chargePercent, !(charge.isFinite && (0...100).contains(charge)) {
            throw AgentConfigError(message: "key 'charge_percent': \(Self.text(charge)) is not in 0...100")
        }
        if let uplink = file.uplinkMbps, !(uplink.isFinite && (0...FleetStatus.maxUplinkMbps).contains(uplink)) {
            throw AgentConfigError(message: "key 'uplink_mbps': \(uplink) is not in 0...\(FleetStatus.maxUplinkMbps)")
        }
        var changed: [String] = []
        var applied: VehicleState?
        self.state.update { vehicle in
            let before = vehicle
            if let v = file.pluggedIn { vehicle.pluggedIn = v }
            if let v = file.chargePercent { vehicle.chargePercent = Int(v.rounded(.down)) }
            if let v = file.link { vehicle.link = v }
            // Whole and at least -1 (checked above); -1 is not departing.
            vehicle.departingInSeconds = file.departingSeconds.flatMap { Int(exactly: $0) }.flatMap {
                $0 < 0 ? nil : $0
            }
            if let v = file.uplinkMbps { vehicle.uplinkMbps = v }
            changed = Self.eligibilityChanges(from: before, to: vehicle)
            applied = vehicle
        }
        if let applied, !changed.isEmpty { self.logChange(changed, applied) }
    }

    /// What changed between two states that decides whether the gateway sends the car work: plugged in,
    /// the link, departing or not. Not the charge, the uplink or the seconds left, which move with every
    /// write of the file (the gateway's `/admin/cars` shows them).
    static func eligibilityChanges(from before: VehicleState, to after: VehicleState) -> [String] {
        var changed: [String] = []
        if after.pluggedIn != before.pluggedIn { changed.append("plugged_in") }
        if after.link != before.link { changed.append("link") }
        if (after.departingInSeconds == nil) != (before.departingInSeconds == nil) { changed.append("departing") }
        return changed
    }

    /// One info line a change that decides eligibility (helper-130: an applied change said nothing, so an
    /// operator asking why a car took no work could not tell from its log when it was unplugged).
    private func logChange(_ changed: [String], _ state: VehicleState) {
        self.logger.info(
            "Car state changed",
            metadata: [
                "fleet.changed": "\(changed.joined(separator: ","))",
                "fleet.plugged_in": "\(state.pluggedIn)",
                "fleet.link": "\(state.link.rawValue)",
                "fleet.departing_in_s": "\(state.departingInSeconds.map(String.init) ?? "-")",
                "fleet.charge_percent": "\(state.chargePercent)",
            ])
    }

    /// A number as the file would say it: whole ones without a fraction.
    static func text(_ value: Double) -> String {
        Int(exactly: value).map(String.init) ?? "\(value)"
    }

    /// Which key was wrong, or that the text is not JSON.
    static func describe(_ error: any Error) -> String {
        func key(_ path: [any CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        switch error as? DecodingError {
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return "not a JSON object"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "key '\(key(context.codingPath))': wrong type"
        case .dataCorrupted(let context) where !context.codingPath.isEmpty:
            let name = key(context.codingPath)
            // The choices, where there are some (helper-130: `"moon"` got "invalid value" alone).
            let choices = name == "link" ? " (one of \(LinkType.allCases.map(\.rawValue).joined(separator: ", ")))" : ""
            return "key '\(name)': invalid value\(choices)"
        case .keyNotFound(let missing, _):
            return "key '\(missing.stringValue)' missing"
        default:
            return "not valid JSON"
        }
    }

    /// Applies the file whenever its stamp changes, from the one ``apply()`` last read on
    /// (the agent applies it once before it dials; its warning is not repeated here).
    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            // With the size and the inode, not the time alone: a file rewritten within the file system's
            // time resolution after a failed read still looks new (helper-138). A missing file is left as it was.
            let stamp = FileStamp.attributes(of: self.path)
            if stamp != FileStamp.missing, stamp != self.lastRead.stamp.withLock({ $0 }) {
                do { try self.apply(stamp: stamp) } catch {
                    self.logger.warning(
                        "State file rejected", metadata: ["fleet.file": "\(self.path)", "error": "\(error)"])
                }
            }
            try? await Task.sleep(for: self.interval)
        }
    }
}

/// When the state file was last read (its stamp then), shared by a watcher's copies.
private final class ReadStamp: Sendable {
    let stamp = Mutex<String?>(nil)
}

/// The unknown state-file keys last warned of: one warning a key set, not one a rewrite.
private final class WarnedKeys: Sendable {
    private let keys = Mutex<[String]>([])

    /// Whether `keys` differ from those last warned of (and are now those).
    func changed(to keys: [String]) -> Bool {
        self.keys.withLock { last in
            defer { last = keys }
            return last != keys
        }
    }
}

/// A configuration error of the agent, naming the file or flag and the bad value.
public struct AgentConfigError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { self.message }
}
