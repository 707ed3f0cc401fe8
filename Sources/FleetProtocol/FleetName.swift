/// The names a vehicle id or a region may have, on the wire, in certificates and in files: 1–128
/// characters of letters, digits, `-`, `_`, `.` — so each fits a line, a SAN URI and a log field.
package enum FleetName {
    /// Whether `name` is one.
    package static func isValid(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 128
            && name.utf8.allSatisfy {
                ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A)
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
            }
    }
}
