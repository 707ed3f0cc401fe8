import Synchronization

/// The random numbers behind request ids and trace ids: unique, not secret.
///
/// `SystemRandomNumberGenerator` costs a `getrandom` system call per 64-bit word, and Foundation's
/// `UUID()` opens, reads and closes `/dev/urandom` — seven system calls per request for three
/// identifiers nobody needs to be unpredictable. This is xoshiro256** (Blackman and Vigna),
/// seeded once per process from the system's generator, behind a lock held for a few
/// nanoseconds. Never use it for keys, tokens or anything an attacker must not guess: those
/// take `SystemRandomNumberGenerator`.
public struct IdentifierRandom: RandomNumberGenerator, Sendable {
    private static let shared = Mutex(State.seeded())

    public init() {}

    public mutating func next() -> UInt64 {
        Self.shared.withLock { $0.next() }
    }

    /// A version 4 UUID in lower case, as `UUID().uuidString.lowercased()` spells it.
    public static func uuidString() -> String {
        var random = IdentifierRandom()
        let high = random.next() & 0xFFFF_FFFF_FFFF_0FFF | 0x0000_0000_0000_4000  // version 4
        let low = random.next() & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000  // variant 10
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var index = 0
            func put(_ value: UInt64, nibbles: Int) {
                for shift in stride(from: (nibbles - 1) * 4, through: 0, by: -4) {
                    let nibble = UInt8(truncatingIfNeeded: value >> UInt64(shift)) & 0xF
                    buffer[index] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
                    index += 1
                }
            }
            func dash() {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            put(high >> 32, nibbles: 8)
            dash()
            put(high >> 16, nibbles: 4)
            dash()
            put(high, nibbles: 4)
            dash()
            put(low >> 48, nibbles: 4)
            dash()
            put(low, nibbles: 12)
            return index
        }
    }

    /// xoshiro256**'s state.
    struct State: Sendable {
        var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

        static func seeded() -> State {
            var system = SystemRandomNumberGenerator()
            var state = State(s0: system.next(), s1: system.next(), s2: system.next(), s3: system.next())
            if state.s0 | state.s1 | state.s2 | state.s3 == 0 { state.s0 = 1 }  // the one state it must not be in
            return state
        }

        mutating func next() -> UInt64 {
            let result = (self.s1 &* 5).rotatedLeft(by: 7) &* 9
            let t = self.s1 << 17
            self.s2 ^= self.s0
            self.s3 ^= self.s1
            self.s1 ^= self.s2
            self.s0 ^= self.s3
            self.s2 ^= t
            self.s3 = self.s3.rotatedLeft(by: 45)
            return result
        }
    }
}

extension UInt64 {
    fileprivate func rotatedLeft(by count: UInt64) -> UInt64 { (self << count) | (self >> (64 - count)) }
}
