public import FleetProtocol

/// Keyed hashes of a conversation's cumulative message prefixes (issue #14).
///
/// `chunks[i]` is SipHash-2-4, under a 128-bit key, of `chunks[i-1]` and message `i` (its role
/// and text), so it names the whole conversation up to and including message `i`: a request of n
/// messages yields n chunks, and the next turn of the same conversation yields the same first n
/// chunks plus its own. The key is drawn per process from the system's random generator and never
/// leaves it, so a hash reveals nothing outside the gateway; no text is kept.
///
/// Cost: one pass over the messages' UTF-8 bytes (SipHash-2-4, about 1.5 cycles per byte) and
/// two 64-bit words per message.
public struct PrefixHasher: Sendable {
    private let k0: UInt64
    private let k1: UInt64

    /// A hasher with a fresh random key (the gateway makes one per process).
    public init() {
        var generator = SystemRandomNumberGenerator()
        self.k0 = generator.next()
        self.k1 = generator.next()
    }

    /// A hasher with a given key (tests and the simulator).
    public init(k0: UInt64, k1: UInt64) {
        self.k0 = k0
        self.k1 = k1
    }

    /// The chunks of a conversation: one per message, with the prompt tokens up to and including it
    /// (UTF-8 bytes ÷ 4 plus a few tokens of chat template per message, the gateway's estimate).
    /// - Parameters:
    ///   - messages: the request's messages in order, as (role, text).
    ///   - limit: the most messages hashed (the last ones are dropped; a prefix is what is reused).
    public func chunks(_ messages: some Sequence<(role: String, content: String)>, limit: Int = 256) -> [PrefixChunk] {
        var chunks: [PrefixChunk] = []
        chunks.reserveCapacity(min(limit, messages.underestimatedCount))
        var bytes = 0
        for message in messages {
            guard chunks.count < limit else { break }
            self.append(role: message.role, content: message.content, to: &chunks, bytes: &bytes)
        }
        return chunks
    }

    /// ``chunks(_:limit:)`` of a chat request's messages. Not generic: the gateway calls it for
    /// every request, and the generic one, called from another module, walked its sequence
    /// through protocol witnesses (~3 k instructions a request; issue #19).
    public func chunks(_ messages: [ChatMessage], limit: Int = 256) -> [PrefixChunk] {
        var chunks: [PrefixChunk] = []
        chunks.reserveCapacity(max(0, min(limit, messages.count)))
        var bytes = 0
        for message in messages.prefix(max(0, limit)) {
            self.append(role: message.role, content: message.content, to: &chunks, bytes: &bytes)
        }
        return chunks
    }

    /// Appends the chunk of one more message; `bytes` counts the messages' UTF-8 bytes so far.
    private func append(role: String, content: String, to chunks: inout [PrefixChunk], bytes: inout Int) {
        var state = SipHash(k0: self.k0, k1: self.k1)
        state.append(chunks.last?.hash ?? 0)
        var role = role
        role.withUTF8 { state.append($0) }
        state.append(byte: 0)
        var content = content
        content.withUTF8 { state.append($0) }
        bytes += role.utf8.count + content.utf8.count
        chunks.append(PrefixChunk(hash: state.finalize(), tokens: Int32(clamping: bytes / 4 + 4 * (chunks.count + 1))))
    }
}

/// One cumulative prefix of a conversation: its keyed hash and its estimated prompt tokens.
public struct PrefixChunk: Sendable, Hashable {
    public var hash: UInt64
    public var tokens: Int32

    public init(hash: UInt64, tokens: Int32) {
        self.hash = hash
        self.tokens = tokens
    }
}

/// SipHash-2-4 (Aumasson and Bernstein), streaming, 64-bit output.
package struct SipHash {
    private var v0: UInt64
    private var v1: UInt64
    private var v2: UInt64
    private var v3: UInt64
    private var tail: UInt64 = 0
    private var tailBytes = 0
    private var length = 0

    /// A state under the key (k0, k1).
    package init(k0: UInt64, k1: UInt64) {
        self.v0 = k0 ^ 0x736f_6d65_7073_6575
        self.v1 = k1 ^ 0x646f_7261_6e64_6f6d
        self.v2 = k0 ^ 0x6c79_6765_6e65_7261
        self.v3 = k1 ^ 0x7465_6462_7974_6573
    }

    private mutating func round() {
        self.v0 &+= self.v1
        self.v1 = self.v1.rotatedLeft(13) ^ self.v0
        self.v0 = self.v0.rotatedLeft(32)
        self.v2 &+= self.v3
        self.v3 = self.v3.rotatedLeft(16) ^ self.v2
        self.v0 &+= self.v3
        self.v3 = self.v3.rotatedLeft(21) ^ self.v0
        self.v2 &+= self.v1
        self.v1 = self.v1.rotatedLeft(17) ^ self.v2
        self.v2 = self.v2.rotatedLeft(32)
    }

    private mutating func compress(_ m: UInt64) {
        self.v3 ^= m
        self.round()
        self.round()
        self.v0 ^= m
    }

    /// Appends one byte.
    package mutating func append(byte: UInt8) {
        self.tail |= UInt64(byte) << (8 * UInt64(self.tailBytes))
        self.tailBytes += 1
        self.length += 1
        if self.tailBytes == 8 {
            self.compress(self.tail)
            self.tail = 0
            self.tailBytes = 0
        }
    }

    /// Appends a 64-bit word, little-endian.
    package mutating func append(_ word: UInt64) {
        if self.tailBytes == 0 {
            self.compress(word)
            self.length += 8
        } else {
            for i in 0..<8 { self.append(byte: UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) }
        }
    }

    /// Appends bytes.
    package mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        var i = 0
        let n = bytes.count
        while i < n && self.tailBytes != 0 {
            self.append(byte: bytes[i])
            i += 1
        }
        let raw = UnsafeRawBufferPointer(bytes)
        while n - i >= 8 {
            self.compress(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            self.length += 8
            i += 8
        }
        while i < n {
            self.append(byte: bytes[i])
            i += 1
        }
    }

    /// The hash of everything appended.
    package mutating func finalize() -> UInt64 {
        let b = UInt64(truncatingIfNeeded: self.length & 0xff) << 56 | self.tail
        self.compress(b)
        self.v2 ^= 0xff
        for _ in 0..<4 { self.round() }
        return self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
