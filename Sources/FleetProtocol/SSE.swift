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

    /// Whether an event's `data` payload is the terminal `[DONE]`, spaces or tabs around it allowed
    /// (`data:  [DONE]` after a complete answer ended it with an error, session 18).
    public static func isDone(_ payload: ByteBuffer) -> Bool {
        guard payload.readableBytes >= 6, payload.readableBytes <= 32 else { return false }
        let view = payload.readableBytesView
        let isBlank: (UInt8) -> Bool = { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
        guard let start = view.firstIndex(where: { !isBlank($0) }), let last = view.lastIndex(where: { !isBlank($0) })
        else { return false }
        return view[start...last].elementsEqual("[DONE]".utf8)
    }

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
        /// How far into the pending bytes the search for an event's end has looked: the start of the
        /// line it has not seen the end of (0 after an event is taken).
        private var scanned = 0
        /// The largest event accepted.
        public let maxEventBytes: Int

        public init(maxEventBytes: Int = 1 << 20) { self.maxEventBytes = maxEventBytes }

        /// One event: its raw bytes including the blank-line terminator, as received.
        public struct Event: Sendable, Hashable {
            /// The raw bytes, `data: …\n\n`.
            public var raw: ByteBuffer

            /// The `data` field, joined over its lines.
            public var data: String { Decoder.data(of: Array(self.raw.readableBytesView)) }

            /// Whether the raw bytes contain `needle` (byte-wise; no Foundation).
            public func contains(_ needle: StaticString) -> Bool {
                self.raw.withUnsafeReadableBytes { haystack in
                    needle.withUTF8Buffer { needle in SSE.search(needle, in: haystack) != nil }
                }
            }

            /// The `data:` payload (its `data:` lines joined by newlines), sliced from ``raw`` without
            /// copying when there is one line; nil when the event has no `data:` line (a comment or
            /// bare fields).
            public var payload: ByteBuffer? {
                guard let range = self.raw.withUnsafeReadableBytes({ Decoder.singleLinePayload(of: $0) }) else {
                    return self.payloadOfLines
                }
                var payload = self.raw
                payload.moveWriterIndex(to: payload.readerIndex + range.upperBound)
                payload.moveReaderIndex(forwardBy: range.lowerBound)
                return payload
            }

            /// ``payload`` for any shape: each line (its carriage return dropped) that starts with `data:`.
            var payloadOfLines: ByteBuffer? {
                var payload: ByteBuffer?
                var lines = 0
                var cursor = self.raw
                while cursor.readableBytes > 0 {
                    let length = cursor.offsetOfFirst(UInt8(ascii: "\n")) ?? cursor.readableBytes
                    var line = cursor.readSlice(length: length)!
                    cursor.moveReaderIndex(forwardBy: min(1, cursor.readableBytes))
                    if line.readableBytesView.last == UInt8(ascii: "\r") {
                        line.moveWriterIndex(to: line.writerIndex - 1)
                    }
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
        public mutating func feed(_ buffer: ByteBuffer) throws(TooLarge) -> [Event] {
            self.append(buffer)
            var events: [Event] = []
            do {
                while let event = try self.next() { events.append(event) }
            } catch {
                throw TooLarge(completed: events)
            }
            return events
        }

        /// Bytes appended and not yet returned in an event (a partial event, or events ``next()`` has
        /// still to return).
        public var bufferedBytes: Int { self.pending.readableBytes }
        /// The storage behind the pending bytes (what they cost in memory; tests).
        package var pendingStorageCapacity: Int { self.pending.storageCapacity }

        /// Adds bytes; then ``next()`` until it returns nil gives the events they complete, without
        /// an array per call (the agent reads one body piece per event, issue #19).
        public mutating func append(_ buffer: ByteBuffer) {
            if self.pending.readableBytes == 0 {
                self.pending = buffer
            } else {
                // The bytes already returned go before more are added: an upstream whose reads end inside an
                // event always leaves some pending, and without this the buffer grew by every byte of the
                // stream (helper-128: ~3.5 MB a stream held by its decoder, not by the client's backlog).
                if self.pending.readerIndex > self.pending.readableBytes { self.pending.discardReadBytes() }
                var buffer = buffer
                self.pending.writeBuffer(&buffer)
            }
        }

        /// The next completed event, or nil until more bytes are appended.
        /// - Throws: ``TooLarge`` (its `completed` empty: the events before it were returned) when an
        ///   event, whole or partial, exceeds ``maxEventBytes``; what was pending is dropped.
        public mutating func next() throws(TooLarge) -> Event? {
            let scanned = self.scanned
            let (found, resume) = self.pending.withUnsafeReadableBytes { Self.eventLength(in: $0, from: scanned) }
            self.scanned = resume
            guard let length = found else {
                if self.pending.readableBytes > self.maxEventBytes {
                    self.pending = ByteBuffer()
                    self.scanned = 0
                    throw TooLarge()
                }
                if self.pending.readableBytes == 0 { self.pending = ByteBuffer() }  // drop the reference to the input
                return nil
            }
            // A whole event is bounded like a partial one, however it arrived (in one read or many).
            guard length <= self.maxEventBytes else {
                self.pending = ByteBuffer()
                throw TooLarge()
            }
            // A view of the pending bytes (`readSlice`'s bytes without cutting a new slice, ~45
            // instructions an event less).
            var raw = self.pending
            raw.moveWriterIndex(to: raw.readerIndex + length)
            self.pending.moveReaderIndex(forwardBy: length)
            return Event(raw: raw)
        }

        /// The run of whole events at the front of the pending bytes that `accept` takes — each one's bytes,
        /// in order, until it declines one, the bytes end or an event exceeds ``maxEventBytes`` (those stay
        /// pending: ``next()`` returns or refuses them) — consumed and returned as one view of the pending
        /// bytes; nil when it took none. The events are the ones ``next()`` would return, walked with one
        /// access to the buffer for the run instead of two an event (the relay's pass-through run, issue
        /// #19: each access to a `ByteBuffer`'s storage is a run-time exclusivity check).
        package mutating func take(while accept: (UnsafeRawBufferPointer) -> Bool) -> ByteBuffer? {
            let maxEventBytes = self.maxEventBytes
            var scanned = self.scanned
            let taken = self.pending.withUnsafeReadableBytes { bytes -> Int in
                var start = 0
                while start < bytes.count {
                    let rest = UnsafeRawBufferPointer(rebasing: bytes[start...])
                    let (found, resume) = Self.eventLength(in: rest, from: scanned)
                    scanned = resume
                    guard let length = found, length <= maxEventBytes,
                        accept(UnsafeRawBufferPointer(rebasing: rest[..<length]))
                    else { break }
                    start += length
                }
                return start
            }
            self.scanned = scanned
            guard taken > 0 else { return nil }
            var run = self.pending
            run.moveWriterIndex(to: run.readerIndex + taken)
            self.pending.moveReaderIndex(forwardBy: taken)
            return run
        }

        /// The length of the first whole event in `bytes`, through the blank line that ends it (nil while
        /// it is incomplete), and where a later call resumes: 0 after a whole event, else the start of the
        /// line not yet ended. Lines end in LF or CRLF, or a mix (sse-starlette, behind many Python
        /// servers, writes CRLF: `\r\n\r\n` ends its events); a lone CR is not a line end here.
        ///
        /// One forward walk from line feed to line feed, resumed where the last call stopped
        /// (``scanned``): linear in the bytes however they arrive — a search for `\n\n` from the start
        /// on every call was quadratic for a CRLF stream (it has none) and for an event in tiny pieces.
        private static func eventLength(in bytes: UnsafeRawBufferPointer, from scanned: Int) -> (Int?, resume: Int) {
            guard let base = bytes.baseAddress else { return (nil, 0) }
            let count = bytes.count
            var lineStart = scanned
            while lineStart < count {
                guard let hit = memchr(base + lineStart, Int32(UInt8(ascii: "\n")), count - lineStart) else { break }
                let lineFeed = base.distance(to: UnsafeRawPointer(hit))
                // An empty line (nothing, or a CR, before its LF) ends the event.
                if lineFeed == lineStart || (lineFeed == lineStart + 1 && bytes[lineStart] == UInt8(ascii: "\r")) {
                    return (lineFeed + 1, 0)
                }
                lineStart = lineFeed + 1
            }
            return (nil, lineStart)  // the incomplete line starts here: the next call resumes from it
        }

        /// Where the payload is in `raw` (an event's bytes) when the event is the common shape — one
        /// `data:` line and the blank line, `data: PAYLOAD\n\n` — nil for any other (then
        /// ``Event/payload`` walks the lines).
        ///
        /// One scan, for a newline before the blank line's. Only a carriage return right before that
        /// newline is special: the lines walk drops it, and one elsewhere stays in the payload.
        package static func singleLinePayload(of raw: UnsafeRawBufferPointer) -> Range<Int>? {
            let count = raw.count
            guard count >= 7, let base = raw.baseAddress, memcmp(base, "data:", 5) == 0,
                raw[count - 2] == UInt8(ascii: "\n"), raw[count - 1] == UInt8(ascii: "\n")
            else { return nil }
            let start = raw[5] == UInt8(ascii: " ") ? 6 : 5
            guard memchr(base + start, Int32(UInt8(ascii: "\n")), count - 2 - start) == nil else { return nil }
            let end = count - 2 > start && raw[count - 3] == UInt8(ascii: "\r") ? count - 3 : count - 2
            return start..<end
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
