import FleetProtocol

/// Cuts an input into the pieces a network would deliver, at points derived from the input itself
/// (so a corpus file is the raw bytes on the wire, and a replay cuts it the same way every time).
enum Splits {
    /// FNV-1a of `bytes`: the seed of the cuts.
    static func seed(of bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    /// `bytes` in consecutive pieces of 1…`maxPiece` bytes (some empty pieces too, as a network
    /// read can be).
    static func pieces(of bytes: [UInt8], maxPiece: Int = 64) -> [ArraySlice<UInt8>] {
        var random = SplitMix64(seed: Self.seed(of: bytes))
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        while start < bytes.count {
            let draw = random.next()
            // One piece in 16 is a single byte, one in 16 empty, the rest up to maxPiece.
            let length: Int
            switch draw & 0xF {
            case 0: length = 0
            case 1: length = 1
            default: length = 1 + Int((draw >> 8) % UInt64(maxPiece))
            }
            let end = min(bytes.count, start + length)
            out.append(bytes[start..<end])
            start = end
        }
        return out
    }
}
