public import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

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
    /// Events are zero-copy slices of the input; their `data` is decoded only when asked for.
    /// Bounded: an event larger than `maxEventBytes` is an error rather than unbounded growth.
    public struct Decoder: Sendable {
        private var pending = ByteBuffer()
        /// The largest event accepted.
        public let maxEventBytes: Int

        public init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

        /// One event: its raw bytes including the blank-line terminator, as received.
        public struct Event: Sendable, Hashable {
            /// The raw bytes, `data: …\n\n`.
            public var raw: ByteBuffer {
                didSet { (self.payloadStart, self.payloadEnd) = (0, -1) }
            }

            /// Where the payload is in ``raw`` (offsets from its reader index), for the common shape;
            /// `payloadEnd` −1 for any other.
            ///
            /// The shape: one `data:` line and the blank line (`data: PAYLOAD\n\n`, a carriage return
            /// before the newline not part of the payload), found by the decoder's scan for the event's
            /// end, so ``payload`` reads no byte again. For any other shape, or once ``raw`` is set,
            /// ``payload`` walks the lines. Two integers rather than an optional range: an event is
            /// copied a few times on its way, and this keeps the copy a plain one.
            private var payloadStart: Int32
            private var payloadEnd: Int32

            init(raw: ByteBuffer, singleLine: Range<Int>?) {
                self.raw = raw
                if let singleLine, singleLine.upperBound <= Int32.max {
                    (self.payloadStart, self.payloadEnd) = (Int32(singleLine.lowerBound), Int32(singleLine.upperBound))
                } else {
                    (self.payloadStart, self.payloadEnd) = (0, -1)
                }
            }

            /// Events are their bytes: equal raw bytes, equal events.
            public static func == (lhs: Event, rhs: Event) -> Bool { lhs.raw == rhs.raw }

            public func hash(into hasher: inout Hasher) { hasher.combine(self.raw) }

            /// The `data` field, joined over its lines.
            public var data: String { Decoder.data(of: Array(self.raw.readableBytesView)) }

            /// Whether the raw bytes contain `needle` (byte-wise; no Foundation).
            public func contains(_ needle: StaticString) -> Bool {
                self.raw.withUnsafeReadableBytes { haystack in
                    needle.withUTF8Buffer { needle in SSE.search(needle, in: haystack) != nil }
                }
            }

            /// Whether this is the terminal `data: [DONE]` event.
            public var isDone: Bool {
                self.raw.readableBytes <= 16 && self.contains("[DONE]")
            }

            /// The `data:` payload (its `data:` lines joined by newlines), sliced from ``raw`` without
            /// copying when there is one line; nil when the event has no `data:` line (a comment or
            /// bare fields).
            public var payload: ByteBuffer? {
                guard self.payloadEnd >= 0 else { return self.payloadOfLines }
                var payload = self.raw
                payload.moveWriterIndex(to: payload.readerIndex + Int(self.payloadEnd))
                payload.moveReaderIndex(forwardBy: Int(self.payloadStart))
                return payload
            }

            /// ``payload`` for any shape: each line (its carriage return dropped) that starts with `data:`.
            private var payloadOfLines: ByteBuffer? {
                var payload: ByteBuffer?
                var lines = 0
                var cursor = self.raw
                while cursor.readableBytes > 0 {
                    let length = cursor.offsetOfFirst(UInt8(ascii: "\n")) ?? cursor.readableBytes
                    var line = cursor.readSlice(length: length)!
                    cursor.moveReaderIndex(forwardBy: min(1, cursor.readableBytes))
                    if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
                    guard line.readableBytes >= 5, line.readableBytesView.starts(with: "data:".utf8) else { continue }
                    line.moveReaderIndex(forwardBy: 5)
                    if line.readableBytesView.first == UInt8(ascii: " ") { line.moveReaderIndex(forwardBy: 1) }
                    lines += 1
                    if lines == 1 {
                        payload = line
                    } else {
                        payload!.writeStaticString("\n")
                        payload!.writeImmutableBuffer(line)
                    }
                }
                return payload
            }
        }

        public struct TooLarge: Error, Hashable, Sendable {
            /// The events completed before the one too large, in order: they are valid and are the
            /// caller's to handle before the failure (the fuzzer found them dropped).
            public var completed: [Event] = []
        }

        /// Feeds bytes and returns the events completed by them.
        ///
        /// The events ``next()`` would return, found in one pass over the pending bytes: one access
        /// to the buffer's storage rather than one an event (each checked for exclusivity, ~90
        /// instructions), and each event a view of the pending bytes rather than a `readSlice`.
        public mutating func feed(_ buffer: ByteBuffer) throws(TooLarge) -> [Event] {
            self.append(buffer)
            let pending = self.pending
            let limit = self.maxEventBytes
            var events: [Event] = []
            var tooLarge = false
            let consumed = pending.withUnsafeReadableBytes { bytes in
                var offset = 0
                while let found = Self.firstEvent(in: UnsafeRawBufferPointer(rebasing: bytes[offset...])) {
                    // A whole event is bounded like a partial one, however it arrived (in one read or many).
                    guard found.end + 2 <= limit else {
                        tooLarge = true
                        break
                    }
                    events.append(
                        Event(raw: Self.view(of: pending, from: offset, length: found.end + 2), singleLine: found.singleLine))
                    offset += found.end + 2
                }
                return offset
            }
            self.pending.moveReaderIndex(forwardBy: consumed)
            if tooLarge || self.pending.readableBytes > limit {
                self.pending = ByteBuffer()
                throw TooLarge(completed: events)
            }
            if self.pending.readableBytes == 0 { self.pending = ByteBuffer() }  // drop the reference to the input
            return events
        }

        /// Bytes appended and not yet returned in an event (a partial event, or events ``next()`` has
        /// still to return).
        public var bufferedBytes: Int { self.pending.readableBytes }

        /// Adds bytes; then ``next()`` until it returns nil gives the events they complete, without
        /// an array per call (the agent reads one body piece per event, issue #19).
        public mutating func append(_ buffer: ByteBuffer) {
            if self.pending.readableBytes == 0 {
                self.pending = buffer
            } else {
                var buffer = buffer
                self.pending.writeBuffer(&buffer)
            }
        }

        /// The next completed event, or nil until more bytes are appended.
        /// - Throws: ``TooLarge`` (its `completed` empty: the events before it were returned) when an
        ///   event, whole or partial, exceeds ``maxEventBytes``; what was pending is dropped.
        public mutating func next() throws(TooLarge) -> Event? {
            let found = self.pending.withUnsafeReadableBytes { Self.firstEvent(in: $0) }
            guard let found else {
                if self.pending.readableBytes > self.maxEventBytes {
                    self.pending = ByteBuffer()
                    throw TooLarge()
                }
                if self.pending.readableBytes == 0 { self.pending = ByteBuffer() }  // drop the reference to the input
                return nil
            }
            // A whole event is bounded like a partial one, however it arrived (in one read or many).
            guard found.end + 2 <= self.maxEventBytes else {
                self.pending = ByteBuffer()
                throw TooLarge()
            }
            let raw = Self.view(of: self.pending, from: 0, length: found.end + 2)
            self.pending.moveReaderIndex(forwardBy: found.end + 2)
            return Event(raw: raw, singleLine: found.singleLine)
        }

        /// `length` readable bytes of `buffer` from `offset`, sharing its storage: `readSlice`'s bytes
        /// by moving a copy's indices (no new slice to cut, ~85 instructions an event less).
        private static func view(of buffer: ByteBuffer, from offset: Int, length: Int) -> ByteBuffer {
            var view = buffer
            view.moveReaderIndex(forwardBy: offset)
            view.moveWriterIndex(to: view.readerIndex + length)
            return view
        }

        /// The first complete event in `bytes`, nil if none.
        ///
        /// `end` is the offset of the blank line (the first `\n\n`); `singleLine` the payload's range
        /// when the event is one `data:` line (see ``Event``), seen on the way: the first newline found
        /// is then the blank line's.
        static func firstEvent(in bytes: UnsafeRawBufferPointer) -> (end: Int, singleLine: Range<Int>?)? {
            guard let base = bytes.baseAddress, bytes.count >= 2 else { return nil }
            let newline = UInt8(ascii: "\n")
            // Newlines before the last byte, each followed by one more byte to look at.
            var offset = 0
            var lines = 0
            while let hit = memchr(base + offset, Int32(newline), bytes.count - 1 - offset) {
                let end = base.distance(to: UnsafeRawPointer(hit))
                guard bytes[end + 1] != newline else {
                    guard lines == 0, end >= 5, memcmp(base, "data:", 5) == 0 else { return (end, nil) }
                    let start = bytes[5] == UInt8(ascii: " ") ? 6 : 5
                    let stop = end > start && bytes[end - 1] == UInt8(ascii: "\r") ? end - 1 : end
                    return (end, start..<max(start, stop))
                }
                lines += 1
                offset = end + 1
                if offset >= bytes.count - 1 { break }
            }
            return nil
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

    /// The offset of the first occurrence of `needle` in `haystack`, if any (memchr on the first byte).
    public static func search(_ needle: UnsafeBufferPointer<UInt8>, in haystack: UnsafeRawBufferPointer) -> Int? {
        search(UnsafeRawBufferPointer(needle), in: haystack)
    }

    /// The offset of the first occurrence of `needle` in `haystack`, if any.
    public static func search(_ needle: UnsafeRawBufferPointer, in haystack: UnsafeRawBufferPointer) -> Int? {
        guard needle.count > 0, haystack.count >= needle.count, let base = haystack.baseAddress else { return nil }
        let first = Int32(needle[0])
        var offset = 0
        let last = haystack.count - needle.count
        while offset <= last {
            guard let hit = memchr(base + offset, first, last - offset + 1) else { return nil }
            let position = base.distance(to: UnsafeRawPointer(hit))
            if memcmp(base + position, needle.baseAddress!, needle.count) == 0 { return position }
            offset = position + 1
        }
        return nil
    }
}

extension ByteBuffer {
    /// The offset from the reader index of the first `byte` among the readable bytes (`memchr`: a
    /// generic walk of `readableBytesView` cost ~10 instructions a byte on the relay's path).
    package func offsetOfFirst(_ byte: UInt8) -> Int? {
        self.withUnsafeReadableBytes { raw in
            guard let base = raw.baseAddress, raw.count > 0, let hit = memchr(base, Int32(byte), raw.count) else {
                return nil
            }
            return base.distance(to: UnsafeRawPointer(hit))
        }
    }
}
