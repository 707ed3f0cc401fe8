import FleetTesting
import Logging
import Synchronization
import Testing

@testable import FleetGate

@Suite("RequestLogger")
struct RequestLoggerTests {
    static func logger(level: Logger.Level, parent: String?) -> (RequestLogger, CapturedLog) {
        let sink = CapturedLog()
        var base = Logger(label: "test") { _ in CapturedLog.Handler(sink: sink, logLevel: level) }
        base[metadataKey: "replica"] = "a"
        let logger = RequestLogger(
            base: base, traceID: "0af7651916cd43dd8448eb211c80319c", spanID: "b7ad6b7169203331", parentSpanID: parent)
        return (logger, sink)
    }

    @Test("The audit's fields, then the trace ids: one line, keys still ascending, values as given")
    func auditLine() throws {
        let (logger, sink) = Self.logger(level: .info, parent: "00f067aa0ba902b7")
        let fields = [("fleet.route", "central"), ("fleet.status", "200"), ("fleet.zone", "eu")]
        let withTrace = logger.withTrace(fields.map { (key: $0.0, value: $0.1) })
        #expect(
            withTrace.map(\.key) == [
                "fleet.route", "fleet.status", "fleet.zone", "parent_span_id", "span_id", "trace_id",
            ])
        #expect(
            zip(withTrace.dropLast(), withTrace.dropFirst()).allSatisfy {
                $0.key.utf8.lexicographicallyPrecedes($1.key.utf8)
            })
        #expect(withTrace.last?.value == "0af7651916cd43dd8448eb211c80319c")
        #expect(
            RequestLogger(base: logger.base, traceID: "t", spanID: "s", parentSpanID: nil).withTrace([]).map(\.key) == [
                "span_id", "trace_id",
            ])

        logger.log(level: .info, "Request served", sortedFields: fields.map { (key: $0.0, value: $0.1) })
        logger.log(level: .debug, "below the level", sortedFields: [])
        let lines = sink.lines.withLock { $0 }
        try #require(lines.count == 1)
        #expect(lines[0].message == "Request served")
        #expect(
            lines[0].metadata == [
                "fleet.route": "central", "fleet.status": "200", "fleet.zone": "eu", "replica": "a",
                "parent_span_id": "00f067aa0ba902b7", "span_id": "b7ad6b7169203331",
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
            ])
        // The gateway's logger itself never gets the request's ids.
        #expect(logger.base[metadataKey: "trace_id"] == nil)
    }

    @Test("Debug and error lines carry the trace ids under the line's own; below the level nothing is built")
    func otherLines() throws {
        let (logger, sink) = Self.logger(level: .debug, parent: nil)
        logger.debug("Attempt opened", metadata: ["fleet.attempt": "0"])
        logger.error("Internal inconsistency", metadata: ["span_id": "the line's own"])
        let lines = sink.lines.withLock { $0 }
        try #require(lines.count == 2)
        #expect(lines[0].level == .debug)
        #expect(
            lines[0].metadata == [
                "fleet.attempt": "0", "replica": "a", "span_id": "b7ad6b7169203331",
                "trace_id": "0af7651916cd43dd8448eb211c80319c",
            ])
        #expect(lines[1].metadata["span_id"] == "the line's own")

        let (quiet, quietSink) = Self.logger(level: .info, parent: nil)
        var built = false
        quiet.debug(
            "never",
            metadata: {
                built = true; return [:]
            }())
        #expect(!built)
        #expect(quietSink.lines.withLock { $0.isEmpty })
    }
}
