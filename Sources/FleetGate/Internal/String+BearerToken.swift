extension String {
    /// The token of an `Authorization: Bearer TOKEN` value, as bytes; nil for another scheme. The
    /// scheme is case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer`.
    var bearerToken: ArraySlice<UInt8>? {
        let bytes = Array(self.utf8)
        guard bytes.count > 7, bytes[6] == UInt8(ascii: " ") else { return nil }
        let scheme = bytes[..<6].map { $0 | 0x20 }  // ASCII lower case
        guard scheme == Array("bearer".utf8) else { return nil }
        return bytes[7...]
    }
}
