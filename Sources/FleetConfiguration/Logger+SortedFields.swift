public import Logging

extension Logger {
    /// Logs `message` with `sortedFields` as its metadata: string values, keys strictly ascending (checked
    /// in debug builds). The gateway's own handler (``LogLevelControl/bootstrap()``) renders them as they
    /// are, without the `Logger.Metadata` dictionary and the sort a line that `info(_:metadata:)` costs
    /// (~17,000 instructions of the ~33,000 an audit line took, issue #19); any other handler gets them
    /// through swift-log, as that dictionary. Either way the line is the same.
    ///
    /// For the lines the gateway writes per request at the production level (the audit line).
    package func log(
        level: Logger.Level, _ message: String, sortedFields: [(key: String, value: String)],
        fileID: String = #fileID, function: String = #function, line: UInt = #line
    ) {
        // swift-log's default source: the module, which `#fileID` starts with.
        let source = fileID.utf8.firstIndex(of: UInt8(ascii: "/")).map { String(fileID[..<$0]) } ?? "n/a"
        if let handler = self.handler as? ControlledLogHandler {
            handler.log(level: level, message: message, sortedFields: sortedFields, source: source)
        } else {
            self.log(
                level: level, "\(message)",
                metadata: Logger.Metadata(
                    sortedFields.map { ($0.key, .string($0.value)) }, uniquingKeysWith: { first, _ in first }),
                source: source, file: fileID, function: function, line: line)
        }
    }
}
