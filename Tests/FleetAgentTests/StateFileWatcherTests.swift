import FleetAgent
import FleetProtocol
import Foundation
import Logging
import Synchronization
import Testing

/// The car's telemetry file: applied when sound; otherwise a reason an operator can act on, and the
/// last good state stays.
@Suite("State file", .timeLimit(.minutes(1)))
struct StateFileWatcherTests {
    func watcher(_ text: String?) throws -> (StateFileWatcher, AgentState, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString).json").path
        if let text { try text.write(toFile: path, atomically: true, encoding: .utf8) }
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1), slots: 1)
        return (StateFileWatcher(path: path, state: state, logger: Logger(label: "test")), state, path)
    }

    func failure(_ text: String?) throws -> String {
        let (watcher, state, path) = try self.watcher(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            try watcher.apply()
            return "applied"
        } catch {
            #expect(state.vehicle.chargePercent == 80)  // the last good state stays
            return "\(error)"
        }
    }

    /// helper-130: an applied change said nothing in the car's log.
    @Test("A change that decides eligibility is logged once, with the state; the charge moving is not")
    func changesLogged() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1), slots: 1)
        let watcher = StateFileWatcher(
            path: path, state: state, logger: Logger(label: "test") { _ in Messages.Handler(sink: messages) })
        func apply(_ text: String) throws {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            try watcher.apply()
        }
        try apply(#"{"plugged_in": true, "charge_percent": 80, "link": "wifi"}"#)
        try apply(#"{"plugged_in": true, "charge_percent": 75, "link": "wifi", "uplink_mbps": 40}"#)
        #expect(messages.count("Car state changed") == 0, "the same eligibility: nothing to say")
        try apply(#"{"plugged_in": false, "charge_percent": 75, "link": "wifi"}"#)
        try apply(#"{"plugged_in": false, "charge_percent": 74, "link": "cellular", "departing_in_s": 600}"#)
        try apply(#"{"plugged_in": false, "charge_percent": 74, "link": "cellular", "departing_in_s": 590}"#)
        let lines = messages.metadata(of: "Car state changed")
        #expect(lines.map { $0["fleet.changed"]?.description } == ["plugged_in", "link,departing"])
        #expect(lines.first?["fleet.plugged_in"] == "false")
        #expect(lines.last?["fleet.departing_in_s"] == "600" && lines.last?["fleet.link"] == "cellular")
        #expect(lines.last?["fleet.charge_percent"] == "74")
    }

    /// helper-137: at start a malformed file was warned of twice, by the agent's read and by the watcher's
    /// first pass over the same file.
    @Test("A file read before the watcher runs is not read again, nor warned of, until it changes")
    func firstPassAfterRead() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString).json").path
        try "plugged_in: yes".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let messages = Messages()
        let state = AgentState(
            initial: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 1), slots: 1)
        let watcher = StateFileWatcher(
            path: path, state: state, interval: .milliseconds(10),
            logger: Logger(label: "test") { _ in Messages.Handler(sink: messages) })
        #expect(throws: AgentConfigError.self) { try watcher.apply() }  // the agent's read, before it dials
        let running = Task { try await watcher.run() }
        defer { running.cancel() }
        try await Task.sleep(for: .milliseconds(200))
        #expect(messages.count("State file rejected") == 0)
        // A new version of the file, moved in with a later time at once, is read and warned of once.
        try "[true]".write(toFile: path + ".new", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes(
            [.modificationDate: Date().addingTimeInterval(60)], ofItemAtPath: path + ".new")
        #expect(rename(path + ".new", path) == 0)
        for _ in 0..<500 where messages.count("State file rejected") == 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(messages.count("State file rejected") == 1)
    }

    @Test("A sound file is applied")
    func applies() throws {
        let (watcher, state, path) = try self.watcher(#"{"plugged_in":false,"charge_percent":41,"link":"cellular"}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try watcher.apply()
        #expect(!state.vehicle.pluggedIn && state.vehicle.chargePercent == 41 && state.vehicle.link == .cellular)
    }

    /// note47: a battery's figure with a fraction was "not valid JSON".
    @Test("A charge with a fraction counts as its whole percent; departing_in_s must be whole seconds")
    func fractions() throws {
        let (watcher, state, path) = try self.watcher(#"{"charge_percent":63.5,"departing_in_s":120.0}"#)
        defer { try? FileManager.default.removeItem(atPath: path) }
        try watcher.apply()
        #expect(state.vehicle.chargePercent == 63 && state.vehicle.departingInSeconds == 120)
        #expect(try self.failure(#"{"charge_percent":100.5}"#) == "key 'charge_percent': 100.5 is not in 0...100")
        #expect(
            try self.failure(#"{"departing_in_s":1.5}"#) == "key 'departing_in_s': 1.5 is not a whole number of seconds"
        )
        #expect(try self.failure(#"{"departing_in_s":1e300}"#) == "key 'departing_in_s': 1e+300 is over 2592000")
    }

    @Test("A missing, malformed or out-of-range file says why, in words")
    func reasons() throws {
        let missing = try self.failure(nil)
        #expect(missing == "cannot be read: No such file or directory", "\(missing)")
        #expect(try self.failure("plugged_in: yes").hasPrefix("not valid JSON (a JSON object of any of plugged_in"))
        #expect(try self.failure("[true]").hasPrefix("not a JSON object"))
        #expect(try self.failure(#"{"charge_percent":"full"}"#).hasPrefix("key 'charge_percent': wrong type"))
        let link = try self.failure(#"{"link":"carrier-pigeon"}"#)
        #expect(link.hasPrefix("key 'link': invalid value (one of wifi, cellular, satellite, ethernet)"), "\(link)")
        #expect(try self.failure(#"{"charge_percent":140}"#) == "key 'charge_percent': 140 is not in 0...100")
        // Values the gateway would close the tunnel for (FleetStatus.problem(with:)) never leave the car.
        #expect(try self.failure(#"{"departing_in_s":9999999}"#) == "key 'departing_in_s': 9999999 is over 2592000")
        #expect(try self.failure(#"{"uplink_mbps":-1}"#) == "key 'uplink_mbps': -1.0 is not in 0...100000.0")
    }

    /// helper-130: `pluged_in` and `departing_in_sec` were ignored in silence (the car kept serving), and
    /// `departing_in_s: -1` — "not departing" in the configuration — meant "leaving now". helper-132: a key
    /// of newer car software must not freeze the state.
    @Test("A typo of a key is refused, naming it; another key is ignored; -1 or null is not departing")
    func typosAndSigns() throws {
        #expect(
            try self.failure(#"{"pluged_in":false,"charge_percent":63}"#)
                == "key 'pluged_in': unknown key; did you mean 'plugged_in'?")
        #expect(
            try self.failure(#"{"departing_in_sec":5}"#)
                == "key 'departing_in_sec': unknown key; did you mean 'departing_in_s'?")
        #expect(
            try self.failure(#"{"departing_in_s":-2}"#)
                == "key 'departing_in_s': -2: seconds until the car drives off (0: now); null, absent or -1: not departing"
        )
        for text in [
            #"{"departing_in_s":null,"charge_percent":63}"#, #"{"departing_in_s":-1,"charge_percent":63}"#,
            #"{"odometer_km":48213,"charge_percent":63}"#,
        ] {
            let (watcher, state, path) = try self.watcher(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            state.update { $0.departingInSeconds = 30 }
            try watcher.apply()
            #expect(state.vehicle.departingInSeconds == nil && state.vehicle.chargePercent == 63, "\(text)")
        }
    }
}

/// The messages of a logger's lines, for a test to count.
final class Messages: Sendable {
    private let all = Mutex<[String]>([])
    private let fields = Mutex<[Logger.Metadata]>([])

    func count(_ message: String) -> Int { self.all.withLock { $0.filter { $0 == message }.count } }

    /// The metadata of each line logged with `message`, in order.
    func metadata(of message: String) -> [Logger.Metadata] {
        let messages = self.all.withLock { $0 }
        let fields = self.fields.withLock { $0 }
        return zip(messages, fields).filter { $0.0 == message }.map(\.1)
    }

    struct Handler: LogHandler {
        let sink: Messages
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            self.sink.fields.withLock { $0.append(event.metadata ?? [:]) }
            self.sink.all.withLock { $0.append(event.message.description) }
        }
    }
}
