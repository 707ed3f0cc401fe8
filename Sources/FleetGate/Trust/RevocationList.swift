public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The fleet's revocation file: serial numbers and vehicle ids that the gateway refuses, reloaded
/// without a restart (swift-certificates has no CRL type; issue #20).
///
/// Format (`docs/security.md`): one entry a line, `#` starts a comment, blank lines are ignored.
/// ```
/// serial 5f3a9c0e11d2          # one certificate (lowercase or uppercase hex, `:` allowed)
/// vehicle car-0042             # every certificate of this vehicle, past and future
/// ```
/// `fleetgate pki revoke` appends such lines with the date in a comment.
public struct RevocationList: Sendable, Hashable {
    /// Revoked serial numbers, lowercase hex without separators or leading zero bytes.
    public private(set) var serials: Set<String> = []
    /// Revoked vehicle ids.
    public private(set) var vehicles: Set<String> = []

    /// An empty list.
    public init() {}

    /// Parses the file's text.
    /// - Throws: ``RevocationFileError`` with the file, line and the offending text.
    public init(parsing text: String, file: String = "<revocations>") throws(RevocationFileError) {
        // "\r\n" is one Character in Swift: a file saved with Windows line ends split on "\n" was one line,
        // and everything after its first `#` a comment (helper-77).
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, raw) in lines.enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            guard words.count == 2 else {
                throw RevocationFileError(file: file, line: index + 1, "expected 'serial HEX' or 'vehicle ID'")
            }
            switch words[0] {
            case "serial":
                guard let serial = Self.normalisedSerial(String(words[1])) else {
                    throw RevocationFileError(file: file, line: index + 1, "'\(words[1])' is not a hex serial number")
                }
                self.serials.insert(serial)
            case "vehicle":
                guard VehicleIdentity.isValidName(String(words[1])) else {
                    throw RevocationFileError(file: file, line: index + 1, "'\(words[1])' is not a vehicle id")
                }
                self.vehicles.insert(String(words[1]))
            default:
                throw RevocationFileError(
                    file: file, line: index + 1, "'\(words[0])' is neither 'serial' nor 'vehicle'")
            }
        }
    }

    /// Reads and parses a file; a missing file is an empty list only when `missingIsEmpty`.
    public static func load(path: String, missingIsEmpty: Bool = true) throws(RevocationFileError) -> Self {
        guard FileManager.default.fileExists(atPath: path) else {
            if missingIsEmpty { return Self() }
            throw RevocationFileError(file: path, line: 0, "no such file")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RevocationFileError(file: path, line: 0, "cannot read the file")
        }
        return try Self(parsing: String(decoding: data, as: UTF8.self), file: path)
    }

    /// Whether a certificate (by serial) or its vehicle is revoked.
    public func isRevoked(_ identity: VehicleIdentity) -> Bool {
        self.serials.contains(identity.serial) || self.vehicles.contains(identity.vehicleID)
    }

    /// Whether a vehicle id is revoked outright (token-authenticated cars have no serial).
    public func isRevoked(vehicleID: String) -> Bool { self.vehicles.contains(vehicleID) }

    /// Appends `entries` (`serial HEX`, `vehicle ID`) to the file at `path`, each with the date and
    /// `comment` after a `#`, creating it with `mode` if missing (a revocation file is read by the
    /// gateway's own user: 0644): `fleetgate pki revoke` and the gateway's quarantine file
    /// (``FleetTrust``) write this way.
    /// - Returns: the text appended.
    @discardableResult
    public static func append(_ entries: [String], comment: String, to path: String, mode: Int = 0o644) throws
        -> String
    {
        let stamp = ISO8601DateFormatter().string(from: Date())
        let comment = comment.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
        var text = entries.map { "\($0)  # \(stamp) \(comment)\n" }.joined()
        // One `write` with O_APPEND: two writers at once each add whole lines, and a missing file is
        // created in the same call (helper-77: a seek then a write lost one of two lines).
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, mode_t(mode))
        guard fd >= 0 else { throw RevocationFileError(file: path, line: 0, "cannot open the file: \(errnoText())") }
        defer { close(fd) }
        // A file an editor saved without a final newline: the entry goes on a line of its own, not onto the
        // last one (where it made a line of three words, which does not parse, or a comment).
        let size = lseek(fd, 0, SEEK_END)
        if size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, size - 1) == 1, last != UInt8(ascii: "\n") { text = "\n" + text }
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            let reason = errnoText()
            // A part of a line (a full disk) would leave a file that no longer parses, which the gateway
            // then refuses at start (helper-79): the part is cut off again. The offset is the end of this
            // write (O_APPEND).
            if written > 0 { _ = ftruncate(fd, lseek(fd, 0, SEEK_CUR) - off_t(written)) }
            throw RevocationFileError(file: path, line: 0, "cannot append to the file: \(reason)")
        }
        guard fsync(fd) == 0 else {
            throw RevocationFileError(file: path, line: 0, "cannot sync the file: \(errnoText())")
        }
        return text
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// `5F:3A:09` → `5f3a09`; nil if it is not hex.
    public static func normalisedSerial(_ text: String) -> String? {
        let digits = text.lowercased().filter { $0 != ":" }
        guard !digits.isEmpty, digits.count <= 64, digits.allSatisfy(\.isHexDigit) else { return nil }
        let padded = digits.count % 2 == 1 ? "0" + digits : digits
        var bytes: [UInt8] = []
        var index = padded.startIndex
        while index < padded.endIndex {
            let next = padded.index(index, offsetBy: 2)
            bytes.append(UInt8(padded[index..<next], radix: 16)!)
            index = next
        }
        return VehicleIdentity.hex(bytes)
    }
}

/// Why a revocation file was refused.
public struct RevocationFileError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String
    public init(file: String, line: Int, _ message: String) {
        self.file = file
        self.line = line
        self.message = message
    }
    public var description: String { "\(self.file):\(self.line): \(self.message)" }
}
