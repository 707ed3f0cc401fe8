import FleetConfiguration
import FleetProtocol
import HTTPTypes
import Logging

/// A request's logger: the gateway's, with the request's trace ids (#17) on every line it writes.
///
/// The ids are added to a line when it is written, not set as metadata on a copy of the gateway's
/// logger when the request starts: that copied, grew and released a metadata dictionary a request
/// (~4,000 instructions, issue #19) for lines that, at the production level, are the audit line
/// alone — which takes them as sorted fields (``log(level:_:sortedFields:)``).
struct RequestLogger: Sendable {
    /// The gateway's logger.
    let base: Logger
    let traceID: String
    let spanID: String
    /// The app's span, when the request came with a valid `traceparent`.
    let parentSpanID: String?

    /// A request's span (#17): a child of the app's, when `request` came with a valid `traceparent`
    /// (which is `incoming`), or a new trace.
    static func span(of request: HTTPRequest) -> (trace: TraceParent, incoming: TraceParent?) {
        var random = IdentifierRandom()
        let incoming = request.headerFields[.traceparent].flatMap(TraceParent.init)
        return (incoming?.child(using: &random) ?? .start(using: &random), incoming)
    }

    /// The trace ids as metadata.
    var traceMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["trace_id": .string(self.traceID), "span_id": .string(self.spanID)]
        if let parentSpanID { metadata["parent_span_id"] = .string(parentSpanID) }
        return metadata
    }

    /// The gateway's logger with the trace ids as metadata, as every request line had it.
    var logger: Logger {
        var logger = self.base
        for (key, value) in self.traceMetadata { logger[metadataKey: key] = value }
        return logger
    }

    func debug(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard self.base.logLevel <= .debug else { return }
        self.logger.debug(message(), metadata: metadata())
    }

    func info(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard self.base.logLevel <= .info else { return }
        self.logger.info(message(), metadata: metadata())
    }

    func warning(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard self.base.logLevel <= .warning else { return }
        self.logger.warning(message(), metadata: metadata())
    }

    func error(_ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata? = nil) {
        guard self.base.logLevel <= .error else { return }
        self.logger.error(message(), metadata: metadata())
    }

    /// Logs `sortedFields` (keys ascending, each before `parent_span_id`) and the trace ids after them.
    func log(
        level: Logger.Level, _ message: String, sortedFields: [(key: String, value: String)],
        fileID: String = #fileID, function: String = #function, line: UInt = #line
    ) {
        guard self.base.logLevel <= level else { return }
        self.base.log(
            level: level, message, sortedFields: self.withTrace(sortedFields), fileID: fileID, function: function,
            line: line)
    }

    /// `sortedFields` (each key before `parent_span_id`), then the trace ids: still sorted.
    func withTrace(_ sortedFields: [(key: String, value: String)]) -> [(key: String, value: String)] {
        var fields = sortedFields
        fields.reserveCapacity(sortedFields.count + 3)
        if let parentSpanID { fields.append(("parent_span_id", parentSpanID)) }
        fields.append(("span_id", self.spanID))
        fields.append(("trace_id", self.traceID))
        return fields
    }
}

extension RequestLogger {
    /// The logger of a request in `trace`, a child of `incoming` (``span(of:)``).
    init(base: Logger, trace: TraceParent, incoming: TraceParent?) {
        self.init(base: base, traceID: trace.traceID, spanID: trace.parentID, parentSpanID: incoming?.parentID)
    }
}
