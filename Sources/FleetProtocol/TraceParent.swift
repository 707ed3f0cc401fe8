/// A W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/): the trace an app's request
/// belongs to and the span that sent it.
///
/// The gateway accepts one from the app (or starts a trace when there is none or it is malformed, as
/// the spec asks of a participant), makes its own span a child of it, and sends that span as the parent
/// to every car and central attempt. The trace and span ids go into every log line of the request.
public struct TraceParent: Sendable, Hashable, CustomStringConvertible {
    /// The header names.
    public static let header = "traceparent"
    public static let stateHeader = "tracestate"

    /// 32 lowercase hex digits, not all zero.
    public let traceID: String
    /// 16 lowercase hex digits, not all zero: the span that sent the request.
    public let parentID: String
    /// The trace flags (bit 0: sampled).
    public let flags: UInt8

    /// Parses a `traceparent` value. Version 00 must be exactly 55 characters; a higher version is
    /// read by its first four fields (the spec's forward compatibility); version ff is invalid.
    public init?(_ value: String) {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4, parts[0].count == 2, let version = UInt8(parts[0], radix: 16), version != 0xff,
            Self.isHex(parts[0])
        else { return nil }
        if version == 0 && (parts.count != 4 || value.utf8.count != 55) { return nil }
        guard parts[1].count == 32, Self.isHex(parts[1]), parts[1].contains(where: { $0 != "0" }),
            parts[2].count == 16, Self.isHex(parts[2]), parts[2].contains(where: { $0 != "0" }),
            parts[3].count == 2, Self.isHex(parts[3]), let flags = UInt8(parts[3], radix: 16)
        else { return nil }
        self.traceID = String(parts[1])
        self.parentID = String(parts[2])
        self.flags = flags
    }

    /// A trace with the given ids (hex, as in the header).
    public init(traceID: String, parentID: String, flags: UInt8) {
        self.traceID = traceID
        self.parentID = parentID
        self.flags = flags
    }

    /// A new trace, sampled, whose first span is the caller's.
    public static func start<G: RandomNumberGenerator>(using generator: inout G) -> TraceParent {
        let high = generator.next(), low = generator.next() | 1
        let traceID = String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(high, 16, into: buffer, at: 0)
            Self.writeHex(low, 16, into: buffer, at: 16)
            return 32
        }
        return TraceParent(traceID: traceID, parentID: Self.hex(generator.next() | 1, 16), flags: 0x01)
    }

    /// The same trace with a new span of the caller's as the parent: what to send downstream.
    public func child<G: RandomNumberGenerator>(using generator: inout G) -> TraceParent {
        TraceParent(traceID: self.traceID, parentID: Self.hex(generator.next() | 1, 16), flags: self.flags)
    }

    /// The header value (always version 00).
    /// Written into one string of its final size: interpolation and `String(radix:)` with padding
    /// cost ~10 k instructions a request (issue #19).
    public var description: String {
        var traceID = self.traceID, parentID = self.parentID
        return traceID.withUTF8 { trace in
            parentID.withUTF8 { parent in
                String(unsafeUninitializedCapacity: 3 + trace.count + 1 + parent.count + 3) { buffer in
                    var index = 0
                    func put(_ bytes: UnsafeBufferPointer<UInt8>) {
                        _ = UnsafeMutableBufferPointer(rebasing: buffer[index..<index + bytes.count])
                            .initialize(fromContentsOf: bytes)
                        index += bytes.count
                    }
                    func dash() {
                        buffer[index] = UInt8(ascii: "-")
                        index += 1
                    }
                    buffer[0] = UInt8(ascii: "0")
                    buffer[1] = UInt8(ascii: "0")
                    index = 2
                    dash()
                    put(trace)
                    dash()
                    put(parent)
                    dash()
                    Self.writeHex(UInt64(self.flags), 2, into: buffer, at: index)
                    return index + 2
                }
            }
        }
    }

    private static func isHex(_ s: Substring) -> Bool {
        s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The low `digits` nibbles of `value` in lowercase hex, zero-padded (`digits` ≤ 16).
    private static func hex(_ value: UInt64, _ digits: Int) -> String {
        String(unsafeUninitializedCapacity: digits) { buffer in
            Self.writeHex(value, digits, into: buffer, at: 0)
            return digits
        }
    }

    private static func writeHex(_ value: UInt64, _ digits: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        for index in 0..<digits {
            let nibble = UInt8(truncatingIfNeeded: value >> UInt64(4 * (digits - 1 - index))) & 0xF
            buffer[start + index] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
        }
    }
}
