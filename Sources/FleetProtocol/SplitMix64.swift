/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, seeded generator and bit mixer, so
/// synthetic text, selection and simulations are reproducible from a seed.
public struct SplitMix64: Sendable {
    /// The golden-ratio increment.
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    public var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    /// The next value.
    public mutating func next() -> UInt64 {
        self.state &+= Self.gamma
        return Self.mix(self.state)
    }

    /// The SplitMix64 finaliser: a bijective scramble of `z`.
    public static func mix(_ z: UInt64) -> UInt64 {
        var z = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
