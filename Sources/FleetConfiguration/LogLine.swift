public import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One log line in swift-log's `StreamLogHandler` format, byte for byte:
/// `TIMESTAMP LEVEL LABEL: key=value … [SOURCE] MESSAGE` — metadata sorted by key, the event's
/// keys over the logger's, `error.message`/`error.type` for an attached error.
///
/// Rendered here instead of by `StreamLogHandler` because the gateway writes one such line per
/// request (the audit line, DESIGN.md's Contracts), and `StreamLogHandler` merged two dictionaries,
/// sorted through a lazy map and formatted the local time on every line: ~100,000 instructions a
/// request under callgrind, ~19,000 here (``bytes(timestamp:label:base:event:)``). The format is
/// unchanged, so log pipelines see the same lines.
package enum LogLine {
    /// Renders a line (with its newline).
    package static func render(
        timestamp: String, label: String, base: Logger.Metadata, event: LogEvent
    ) -> String {
        String(decoding: Self.bytes(timestamp: timestamp, label: label, base: base, event: event), as: UTF8.self)
    }

    /// The line's UTF-8 bytes (with its newline), as written.
    ///
    /// Built in one byte array: appending to a `String` cost ~340 instructions a piece (a line has
    /// ~60), and sorting `(key, value)` pairs copied each `Logger.MetadataValue` through the runtime's
    /// tuple witnesses. Here the sort moves a key and where its value is; the values are read in place.
    package static func bytes(
        timestamp: String, label: String, base: Logger.Metadata, event: LogEvent
    ) -> [UInt8] {
        let explicit = event.metadata ?? [:]
        // In precedence order (an attached error's fields, the event's keys, the logger's): the sort is
        // stable, so of two fields with one key the first is rendered and the other skipped.
        var fields: [Field] = []
        fields.reserveCapacity(explicit.count + base.count + 2)
        if let error = event.error {
            fields.append(Field(key: "error.message", value: .text("\(error)")))
            fields.append(Field(key: "error.type", value: .text(String(reflecting: type(of: error)))))
        }
        for index in explicit.indices { fields.append(Field(key: explicit.keys[index], value: .event(index))) }
        for index in base.indices { fields.append(Field(key: base.keys[index], value: .logger(index))) }
        fields.sort { $0.key < $1.key }
        return Self.line(
            timestamp: timestamp, label: label, level: event.level, fields: fields, explicit: explicit, base: base,
            source: event.source, message: event.message.description)
    }

    /// The line ``bytes(timestamp:label:base:event:)`` renders for an event whose metadata is `sortedFields`
    /// (strings, keys strictly ascending) and no error — byte for byte, without the metadata dictionary
    /// and the sort a line: the fields are merged with the logger's, which are few. The audit line's way
    /// (``Logging/Logger/log(level:_:sortedFields:fileID:function:line:)``); `LogLineTests` checks it against the other.
    /// Its values are not searched for line breaks (the other path escapes them): they are what the gateway
    /// made — ids it checked, numbers, names from its configuration — and the search cost ~4,000
    /// instructions a request.
    package static func bytes(
        timestamp: String, label: String, base: Logger.Metadata, level: Logger.Level,
        sortedFields: [(key: String, value: String)], source: String, message: String
    ) -> [UInt8] {
        assert(zip(sortedFields, sortedFields.dropFirst()).allSatisfy { $0.key < $1.key }, "fields not sorted")
        var logger = Array(base.indices)
        logger.sort { base.keys[$0] < base.keys[$1] }
        var line = Self.head(
            timestamp: timestamp, label: label, level: level, fields: sortedFields.count + logger.count)
        // A merge of two sorted runs; of two fields with one key the event's is rendered, the logger's skipped.
        var next = logger.startIndex
        for field in sortedFields {
            while next < logger.endIndex {
                let key = base.keys[logger[next]]
                if key > field.key { break }
                if key < field.key { line.append(field: key, value: base.values[logger[next]]) }
                next += 1
            }
            line.append(field: field.key, text: field.value)
        }
        for index in logger[next...] { line.append(field: base.keys[index], value: base.values[index]) }
        Self.finish(&line, source: source, message: message)
        return line
    }

    /// Renders sorted `fields` (the first of several with one key) between the line's head and its source.
    private static func line(
        timestamp: String, label: String, level: Logger.Level, fields: [Field], explicit: Logger.Metadata,
        base: Logger.Metadata, source: String, message: String
    ) -> [UInt8] {
        var line = Self.head(timestamp: timestamp, label: label, level: level, fields: fields.count)
        var previous: String?
        for field in fields where field.key != previous {
            previous = field.key
            switch field.value {
            case .event(let index): line.append(field: field.key, value: explicit.values[index], escaping: true)
            case .logger(let index): line.append(field: field.key, value: base.values[index], escaping: true)
            case .text(let text): line.append(field: field.key, text: text, escaping: true)
            }
        }
        Self.finish(&line, source: source, message: message, escaping: true)
        return line
    }

    /// `TIMESTAMP LEVEL LABEL:`, in a buffer with room for the line.
    private static func head(timestamp: String, label: String, level: Logger.Level, fields: Int) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(128 + 48 * fields)
        line.append(utf8: timestamp)
        line.append(UInt8(ascii: " "))
        line.append(utf8: level.rawValue)
        if !label.isEmpty {
            line.append(UInt8(ascii: " "))
            line.append(utf8: label)
        }
        line.append(UInt8(ascii: ":"))
        return line
    }

    /// ` [SOURCE] MESSAGE` and the newline.
    private static func finish(_ line: inout [UInt8], source: String, message: String, escaping: Bool = false) {
        line.append(utf8: " [")
        line.append(utf8: source)
        line.append(utf8: "] ")
        if escaping { line.append(escaping: message) } else { line.append(utf8: message) }
        line.append(UInt8(ascii: "\n"))  // the only line break of a line
    }

    /// A metadata field of a line: its key, and where its value is.
    private struct Field {
        enum Value {
            case event(Logger.Metadata.Index)
            case logger(Logger.Metadata.Index)
            case text(String)
        }

        var key: String
        var value: Value
    }

    /// The local time as `StreamLogHandler` writes it (`%Y-%m-%dT%H:%M:%S%z`), formatted once a second.
    package static func timestamp() -> String {
        let now = time(nil)
        return Self.cache.withLock { cache in
            if cache.second == now { return cache.text }
            var seconds = now
            var local = tm()
            guard localtime_r(&seconds, &local) != nil else { return "<unknown>" }
            var buffer = [Int8](repeating: 0, count: 64)
            strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &local)
            cache = (now, buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
            return cache.text
        }
    }

    private static let cache = Mutex<(second: time_t, text: String)>((-1, ""))

    /// Writes a rendered line to standard error, one line at a time (as `StreamLogHandler.standardError`
    /// locked and flushed its unbuffered stream per line), in one `write(2)` unless the kernel takes less.
    package static func writeToStandardError(_ line: [UInt8]) {
        // One writer at a time: a line longer than PIPE_BUF is not written atomically by the kernel.
        Self.writing.withLock { _ in
            line.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // standard error is gone: nothing to tell
                    }
                }
            }
        }
    }

    private static let writing = Mutex<Void>(())
}

extension [UInt8] {
    /// Appends a string's UTF-8 bytes.
    fileprivate mutating func append(utf8 string: String) {
        var string = string
        string.withUTF8 { self.append(contentsOf: $0) }  // one copy (`append(contentsOf: string.utf8)` cost twice this)
    }

    /// Appends a string's UTF-8 bytes, a line break as `\\n` / `\\r`: one event is one line, whatever a
    /// value holds (a refused reload's reasons, one per line, made a line per reason with no timestamp).
    fileprivate mutating func append(escaping string: String) {
        var string = string
        string.withUTF8 { bytes in
            guard let base = bytes.baseAddress,
                memchr(base, Int32(UInt8(ascii: "\n")), bytes.count) != nil
                    || memchr(base, Int32(UInt8(ascii: "\r")), bytes.count) != nil
            else {
                self.append(contentsOf: bytes)
                return
            }
            for byte in bytes {
                switch byte {
                case UInt8(ascii: "\n"): self.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
                case UInt8(ascii: "\r"): self.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
                default: self.append(byte)
                }
            }
        }
    }

    /// Appends ` KEY=TEXT`, the text's line breaks escaped when `escaping`.
    fileprivate mutating func append(field key: String, text: String, escaping: Bool = false) {
        self.append(UInt8(ascii: " "))
        self.append(utf8: key)
        self.append(UInt8(ascii: "="))
        if escaping { self.append(escaping: text) } else { self.append(utf8: text) }
    }

    /// Appends ` KEY=VALUE`, the value's line breaks escaped when `escaping`.
    fileprivate mutating func append(field key: String, value: Logger.MetadataValue, escaping: Bool = false) {
        self.append(UInt8(ascii: " "))
        self.append(utf8: key)
        self.append(UInt8(ascii: "="))
        let text: String
        if case .string(let string) = value { text = string } else { text = value.description }
        // A metadata value as `StreamLogHandler` prints it (its `description`), a string as it is.
        if escaping { self.append(escaping: text) } else { self.append(utf8: text) }
    }
}
