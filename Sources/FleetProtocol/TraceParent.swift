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
        TraceParent(
            traceID: Self.hex(generator.next(), 16) + Self.hex(generator.next() | 1, 16),
            parentID: Self.hex(generator.next() | 1, 16), flags: 0x01)
    }

    /// The same trace with a new span of the caller's as the parent: what to send downstream.
    public func child<G: RandomNumberGenerator>(using generator: inout G) -> TraceParent {
        TraceParent(traceID: self.traceID, parentID: Self.hex(generator.next() | 1, 16), flags: self.flags)
    }

    /// The header value (always version 00).
    public var description: String { "00-\(self.traceID)-\(self.parentID)-\(Self.hex(UInt64(self.flags), 2))" }

    private static func isHex(_ s: Substring) -> Bool {
        s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    private static func hex(_ value: UInt64, _ digits: Int) -> String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: max(0, digits - s.count)) + s
    }
}
