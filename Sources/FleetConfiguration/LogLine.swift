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
/// request under callgrind, ~43,000 here. The format is unchanged, so log pipelines see the same lines.
package enum LogLine {
    /// Renders a line (with its newline).
    package static func render(
        timestamp: String, label: String, base: Logger.Metadata, event: LogEvent
    ) -> String {
        var pairs: [(key: String, value: Logger.MetadataValue)] = []
        let explicit = event.metadata ?? [:]
        pairs.reserveCapacity(base.count + explicit.count + 2)
        for (key, value) in explicit { pairs.append((key, value)) }
        for (key, value) in base where explicit[key] == nil { pairs.append((key, value)) }
        if let error = event.error {
            pairs.removeAll { $0.key == "error.message" || $0.key == "error.type" }
            pairs.append(("error.message", "\(error)"))
            pairs.append(("error.type", "\(String(reflecting: type(of: error)))"))
        }
        pairs.sort { $0.key < $1.key }
        var line = ""
        line.reserveCapacity(160 + 40 * pairs.count)
        line += timestamp
        line += " "
        line += event.level.rawValue
        if !label.isEmpty {
            line += " "
            line += label
        }
        line += ":"
        for pair in pairs {
            line += " "
            line += pair.key
            line += "="
            line += pair.value.description
        }
        line += " ["
        line += event.source
        line += "] "
        line += event.message.description
        line += "\n"
        return line
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
    package static func writeToStandardError(_ line: String) {
        var line = line
        // One writer at a time: a line longer than PIPE_BUF is not written atomically by the kernel.
        Self.writing.withLock { _ in
            line.withUTF8 { bytes in
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
