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
        // The 32 digits of `high` then `low`, most significant first, dashes after the 8th, 12th, 16th
        // and 20th: one table read and one store a digit (a nested writer a group cost ~700
        // instructions an id, on every refusal and every request without an id; issue #19).
        return String(unsafeUninitializedCapacity: 36) { buffer in
            let hex: StaticString = "0123456789abcdef"
            let digits = hex.utf8Start
            var index = 0
            for digit in 0..<32 {
                if digit == 8 || digit == 12 || digit == 16 || digit == 20 {
                    buffer[index] = UInt8(ascii: "-")
                    index += 1
                }
                let word = digit < 16 ? high : low
                buffer[index] = digits[Int(truncatingIfNeeded: word >> UInt64(60 - (digit & 15) * 4)) & 0xF]
                index += 1
            }
            return index
        }
    }
}
