public import NIOCore

/// Server-sent events as OpenAI streams them: `data: <json>\n\n`, ending with `data: [DONE]\n\n`.
public enum SSE {
    /// The terminal event.
    public static let done = "[DONE]"

    /// Encodes one event carrying `payload` (which must not contain a newline; JSON doesn't).
    public static func event(_ payload: String, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.utf8.count + 8)
        buffer.writeStaticString("data: ")
        buffer.writeString(payload)
        buffer.writeStaticString("\n\n")
        return buffer
    }

    /// Splits a byte stream into events, keeping the partial tail for the next call.
    ///
    /// Bounded: an event larger than `maxEventBytes` is an error rather than unbounded growth.
    public struct Decoder: Sendable {
        private var pending: [UInt8] = []
        /// The largest event accepted.
        public let maxEventBytes: Int

        public init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

        /// One decoded event: the `data` field joined over its lines.
        public struct Event: Sendable, Hashable {
            public var data: String
            /// The event's raw bytes including its blank-line terminator, as received.
            public var raw: [UInt8]
        }

        public struct TooLarge: Error, Hashable, Sendable {}

        /// Feeds bytes and returns the events completed by them.
        public mutating func feed(_ buffer: ByteBuffer) throws -> [Event] {
            self.pending.append(contentsOf: buffer.readableBytesView)
            var events: [Event] = []
            var start = 0
            var i = 0
            let bytes = self.pending
            while i + 1 < bytes.count {
                if bytes[i] == UInt8(ascii: "\n") && bytes[i + 1] == UInt8(ascii: "\n") {
                    let raw = Array(bytes[start...(i + 1)])
                    events.append(Event(data: Self.data(of: raw), raw: raw))
                    start = i + 2
                    i = start
                } else {
                    i += 1
                }
            }
            self.pending.removeFirst(start)
            if self.pending.count > self.maxEventBytes { throw TooLarge() }
            return events
        }

        static func data(of raw: [UInt8]) -> String {
            var lines: [String] = []
            for line in raw.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
                var l = line
                if l.last == UInt8(ascii: "\r") { l = l.dropLast() }
                if l.starts(with: Array("data:".utf8)) {
                    var value = l.dropFirst(5)
                    if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
                    lines.append(String(decoding: value, as: UTF8.self))
                }
            }
            return lines.joined(separator: "\n")
        }
    }
}
