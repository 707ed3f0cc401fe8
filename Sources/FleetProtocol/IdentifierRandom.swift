import Synchronization

/// The random numbers behind request ids and trace ids: unique and unpredictable, without a
/// system call each.
///
/// `SystemRandomNumberGenerator` costs a `getrandom` system call per 64-bit word, and Foundation's
/// `UUID()` opens, reads and closes `/dev/urandom` — seven system calls per request for three
/// identifiers. Each word here is SipHash-1-3 (Swift's `Hasher`, keyed per process) of a 128-bit
/// salt drawn once from the system's generator and a counter: a pseudorandom function, so ids
/// sent to cars and central endpoints reveal nothing about other requests' ids (a linear generator
/// such as xoshiro can be recovered from a few outputs). Lock-free: one atomic increment. Keys and
/// tokens still take `SystemRandomNumberGenerator`.
public struct IdentifierRandom: RandomNumberGenerator, Sendable {
    private static let salt: (UInt64, UInt64) = {
        var system = SystemRandomNumberGenerator()
        return (system.next(), system.next())
    }()
    private static let counter = Atomic<UInt64>(0)

    public init() {}

    public mutating func next() -> UInt64 {
        let count = Self.counter.wrappingAdd(1, ordering: .relaxed).oldValue
        var hasher = Hasher()
        hasher.combine(Self.salt.0)
        hasher.combine(Self.salt.1)
        hasher.combine(count)
        return UInt64(bitPattern: Int64(hasher.finalize()))
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
}
