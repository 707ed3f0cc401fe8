import FleetConfiguration
import Logging
import Synchronization
import Testing

@Suite("LogLine")
struct LogLineTests {
    struct Failure: Error, CustomStringConvertible {
        var description: String { "it broke" }
    }

    static func event(
        _ level: Logger.Level = .info, _ message: Logger.Message, metadata: Logger.Metadata?, error: (any Error)? = nil
    ) -> LogEvent {
        var event = LogEvent(
            level: level, message: message, metadata: metadata, source: "FleetGate", file: #fileID, function: #function,
            line: #line)
        event.error = error
        return event
    }

    @Test("A line is StreamLogHandler's: sorted keys, the event's over the logger's, source and message last")
    func format() {
        let line = LogLine.render(
            timestamp: "2026-12-02T02:47:58+0000", label: "fleetgate",
            base: ["trace_id": "abc", "fleet.zone": "base"],
            event: Self.event(
                .info, "Request served",
                metadata: ["fleet.status": "200", "fleet.zone": "eu", "fleet.attempts": "\(1)"]))
        #expect(
            line
                == "2026-12-02T02:47:58+0000 info fleetgate: fleet.attempts=1 fleet.status=200 fleet.zone=eu trace_id=abc [FleetGate] Request served\n"
        )
    }

    @Test("No metadata, an empty label, nested values and an attached error render as StreamLogHandler's do")
    func edges() {
        #expect(
            LogLine.render(timestamp: "T", label: "", base: [:], event: Self.event(.warning, "bare", metadata: nil))
                == "T warning: [FleetGate] bare\n")
        #expect(
            LogLine.render(
                timestamp: "T", label: "l", base: [:],
                event: Self.event(.error, "m", metadata: ["a": ["x", "y"], "b": ["k": "v"]], error: Failure()))
                == #"T error l: a=["x", "y"] b=["k": "v"] error.message=it broke error.type=FleetConfigurationTests.LogLineTests.Failure [FleetGate] m"#
                + "\n")
    }

    @Test("One event is one line: a line break in a value or the message is escaped (the dictionary path)")
    func oneLine() {
        let line = LogLine.render(
            timestamp: "T", label: "l", base: [:],
            event: Self.event(
                .error, "Reload refused\r\nagain", metadata: ["error": "a.yaml:1:1: bad\nb.yaml:2:2: worse"],
                error: Failure()))
        #expect(
            line
                == #"T error l: error=a.yaml:1:1: bad\nb.yaml:2:2: worse error.message=it broke error.type=FleetConfigurationTests.LogLineTests.Failure [FleetGate] Reload refused\r\nagain"#
                + "\n")
    }

    @Test("One field per key: an attached error's fields over the event's, the event's over the logger's")
    func precedence() {
        #expect(
            LogLine.render(
                timestamp: "T", label: "l", base: ["error.message": "base", "k": "base", "a": "base", "z": "base"],
                event: Self.event(
                    .error, "m", metadata: ["error.type": "event", "k": "event", "b": .stringConvertible(7)],
                    error: Failure()))
                == "T error l: a=base b=7 error.message=it broke error.type=FleetConfigurationTests.LogLineTests.Failure k=event z=base [FleetGate] m\n"
        )
        #expect(
            LogLine.bytes(timestamp: "T", label: "l", base: ["k": "v"], event: Self.event(.info, "é", metadata: nil))
                == Array("T info l: k=v [FleetGate] é\n".utf8))
    }

    @Test(
        "Sorted string fields render as the same metadata through the dictionary path does",
        arguments: [
            [:],
            ["trace_id": "abc", "span_id": "def", "parent": "ghi"],
            ["a": "first", "fleet.m": "between", "fleet.zone": "collides", "zz": "last"],
            ["fleet.attempts": "collides with the first", "fleet.zone2": "after the last"],
        ] as [Logger.Metadata])
    func sortedFields(base: Logger.Metadata) {
        let fields: [(key: String, value: String)] = [
            ("fleet.attempts", "1"), ("fleet.origin.country", "DE"), ("fleet.request.id", "req 1 é"),
            ("fleet.vehicle", "-"), ("fleet.zone", "eu"),
        ]
        let metadata = Logger.Metadata(uniqueKeysWithValues: fields.map { ($0.key, .string($0.value)) })
        let sorted = LogLine.bytes(
            timestamp: "T", label: "fleetgate", base: base, level: .info, sortedFields: fields, source: "FleetGate",
            message: "Request served")
        let merged = LogLine.bytes(
            timestamp: "T", label: "fleetgate", base: base,
            event: Self.event(.info, "Request served", metadata: metadata))
        #expect(String(decoding: sorted, as: UTF8.self) == String(decoding: merged, as: UTF8.self))
        #expect(
            LogLine.bytes(
                timestamp: "T", label: "", base: base, level: .warning, sortedFields: [], source: "S", message: "m")
                == LogLine.bytes(timestamp: "T", label: "", base: base, event: Self.event(.warning, "m", metadata: nil))
                .map { $0 }.replacing(Array(" [FleetGate] ".utf8), with: Array(" [S] ".utf8)))
    }

    @Test("Another handler gets the sorted fields through swift-log, with swift-log's source")
    func sortedFieldsElsewhere() {
        let recorder = Recorder()
        var logger = Logger(label: "test") { _ in recorder }
        logger.logLevel = .info
        logger.log(level: .info, "Request served", sortedFields: [("a", "1"), ("b", "two")])
        logger.log(level: .debug, "below the level", sortedFields: [("a", "1")])
        let events = recorder.events.withLock { $0 }
        #expect(events.count == 1)
        #expect(events.first?.message == "Request served")
        #expect(events.first?.metadata == ["a": "1", "b": "two"])
        #expect(events.first?.source == "FleetConfigurationTests")
    }

    /// A handler that keeps what it is given.
    final class Recorder: LogHandler, @unchecked Sendable {
        let events = Mutex<[(message: String, metadata: Logger.Metadata, source: String)]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }
        func log(
            level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
            function: String, line: UInt
        ) {
            self.events.withLock { $0.append((message.description, metadata ?? [:], source)) }
        }
    }

    @Test("The timestamp has StreamLogHandler's shape and is reused within a second")
    func timestamp() throws {
        let first = LogLine.timestamp()
        #expect(try #/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$/#.wholeMatch(in: first) != nil)
        let second = LogLine.timestamp()
        #expect(second.count == first.count)
    }
}
