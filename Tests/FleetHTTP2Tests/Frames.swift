import NIOCore

/// A minimal HTTP/2 frame writer and reader for tests that play a misbehaving peer (RFC 9113 §4.1).
enum Frames {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func frame(_ type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, _ payload: [UInt8] = []) -> [UInt8] {
        let n = payload.count
        return [
            UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags,
            UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF),
        ] + payload
    }

    static func settings(_ entries: [(UInt16, UInt32)] = []) -> [UInt8] {
        var payload: [UInt8] = []
        for (id, value) in entries {
            payload += [
                UInt8(id >> 8), UInt8(id & 0xFF), UInt8(value >> 24), UInt8(value >> 16 & 0xFF),
                UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF),
            ]
        }
        return self.frame(0x4, payload)
    }

    static let settingsAck = frame(0x4, flags: 0x1)

    /// GET `path` as an HPACK block: static :method GET, :scheme http, then literal :path and :authority.
    static func requestBlock(path: String = "/", extra: [(String, String)] = []) -> [UInt8] {
        var block: [UInt8] = [0x82, 0x86]
        block += [0x04] + self.string(path)  // :path, literal without indexing, indexed name 4
        block += [0x01] + self.string("localhost")  // :authority, indexed name 1
        for (name, value) in extra { block += [0x00] + self.string(name) + self.string(value) }
        return block
    }

    static func string(_ s: String) -> [UInt8] {
        let bytes = Array(s.utf8)
        precondition(bytes.count < 127)
        return [UInt8(bytes.count)] + bytes
    }

    static func headers(stream: UInt32, block: [UInt8], endStream: Bool = true, endHeaders: Bool = true) -> [UInt8] {
        self.frame(0x1, flags: (endStream ? 0x1 : 0) | (endHeaders ? 0x4 : 0), stream: stream, block)
    }

    static func continuation(stream: UInt32, block: [UInt8], endHeaders: Bool) -> [UInt8] {
        self.frame(0x9, flags: endHeaders ? 0x4 : 0, stream: stream, block)
    }

    static func rstStream(stream: UInt32, code: UInt32 = 0x8) -> [UInt8] {
        self.frame(
            0x3, stream: stream,
            [UInt8(code >> 24), UInt8(code >> 16 & 0xFF), UInt8(code >> 8 & 0xFF), UInt8(code & 0xFF)])
    }

    static func ping(_ n: UInt8) -> [UInt8] { self.frame(0x6, [0, 0, 0, 0, 0, 0, 0, n]) }

    static func windowUpdate(stream: UInt32, increment: UInt32) -> [UInt8] {
        self.frame(
            0x8, stream: stream,
            [
                UInt8(increment >> 24 & 0x7F), UInt8(increment >> 16 & 0xFF), UInt8(increment >> 8 & 0xFF),
                UInt8(increment & 0xFF),
            ])
    }

    struct Frame: Equatable {
        var type: UInt8
        var flags: UInt8
        var stream: UInt32
        var payload: [UInt8]

        /// For GOAWAY: the error code.
        var goAwayCode: UInt32? {
            guard self.type == 0x7, self.payload.count >= 8 else { return nil }
            return self.payload[4..<8].reduce(0) { $0 << 8 | UInt32($1) }
        }

        /// For RST_STREAM: the error code.
        var resetCode: UInt32? {
            guard self.type == 0x3, self.payload.count == 4 else { return nil }
            return self.payload.reduce(0) { $0 << 8 | UInt32($1) }
        }
    }

    /// Parses whole frames from `bytes` (a server's output; no preface).
    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var i = 0
        while i + 9 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            guard i + 9 + n <= bytes.count else { break }
            let stream =
                UInt32(bytes[i + 5] & 0x7F) << 24 | UInt32(bytes[i + 6]) << 16 | UInt32(bytes[i + 7]) << 8
                | UInt32(bytes[i + 8])
            frames.append(
                Frame(
                    type: bytes[i + 3], flags: bytes[i + 4], stream: stream,
                    payload: Array(bytes[(i + 9)..<(i + 9 + n)])))
            i += 9 + n
        }
        return frames
    }
}
