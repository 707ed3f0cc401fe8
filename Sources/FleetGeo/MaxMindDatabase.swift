internal import CMaxMindDB

#if canImport(Glibc)
    import Glibc
#endif

/// What the database knows about an address.
public struct GeoRecord: Sendable, Hashable {
    /// ISO 3166-1 alpha-2 of `country` (not `registered_country`), or a pseudo-code such as `EU`.
    public var country: String?
    public var continent: String?
    /// `country.is_in_european_union` (absent means false).
    public var isInEuropeanUnion: Bool
    public var latitude: Double?
    public var longitude: Double?
    public var accuracyRadiusKilometres: Int?
}

/// A MaxMind DB (`.mmdb`) opened read-only with mmap through libmaxminddb — a private copy of the file,
/// so that nothing done to the file afterwards reaches the mapping (``PrivateFileCopy``).
///
/// Lookups are safe from every thread (libmaxminddb only reads the mapped file). A corrupt,
/// truncated or wrong-type file is a ``GeoError`` at open; data errors found at lookup (some
/// corrupt files only show them there) make that lookup an error, never a crash.
public final class MaxMindDatabase: CountryLookup, @unchecked Sendable {
    // @unchecked: `mmdb` is written once in init and then only read by libmaxminddb, which is
    // thread-safe for lookups on a shared handle; it is freed in deinit.
    private let mmdb: UnsafeMutablePointer<MMDB_s>
    /// The file it was opened from.
    public let path: String
    /// `database_type` from the metadata, e.g. `GeoIP2-City` or `FleetGate-Country`.
    public let databaseType: String
    /// The build time from the metadata, seconds since 1970 (clamped: one fixture says UINT64_MAX).
    public let buildEpoch: Int64
    /// 4 or 6.
    public let ipVersion: Int
    /// Whether the database's type is one that maps addresses to countries — a Country, City or
    /// Enterprise edition (MaxMind's, DB-IP's, or a FleetGate-Country build); an ASN, ISP, domain or
    /// connection-type database opens and answers every lookup with no country.
    public var hasCountries: Bool {
        let type = self.databaseType.lowercased()
        return ["country", "city", "enterprise"].contains { type.contains($0) }
    }

    /// Opens `path`.
    /// - Throws: ``GeoError`` naming the file and libmaxminddb's reason.
    public init(path: String) throws(GeoError) {
        let mmdb = UnsafeMutablePointer<MMDB_s>.allocate(capacity: 1)
        // A private copy is mapped, not the operator's file: one shortened in place while mapped was a
        // SIGBUS at the next lookup (``PrivateFileCopy``).
        let status: Int32
        do {
            status = try PrivateFileCopy.withCopy(of: path) { copy in MMDB_open(copy, UInt32(MMDB_MODE_MMAP), mmdb) }
        } catch {
            mmdb.deallocate()
            throw error
        }
        guard status == MMDB_SUCCESS else {
            mmdb.deallocate()
            throw GeoError(
                code: .databaseUnreadable,
                message: "\(path): \(String(cString: MMDB_strerror(status))) (libmaxminddb \(status))")
        }
        self.mmdb = mmdb
        self.path = path
        self.databaseType = mmdb.pointee.metadata.database_type.map { String(cString: $0) } ?? "unknown"
        self.buildEpoch = Int64(clamping: mmdb.pointee.metadata.build_epoch)
        self.ipVersion = Int(mmdb.pointee.metadata.ip_version)
        // A file can open and still have a broken tree; probe it once so such a file is refused at load.
        do {
            for probe in ["1.1.1.1", "81.2.69.142"] {
                _ = try self.lookup(IPAddress(probe)!)
                try self.decodeWholeRecord(IPAddress(probe)!)
            }
        } catch {
            // Every property is set, so deinit runs on this throw and closes the handle.
            throw GeoError(code: .databaseUnreadable, message: "\(path): \(error.message)")
        }
    }

    deinit {
        MMDB_close(self.mmdb)
        self.mmdb.deallocate()
    }

    /// Looks an address up; nil when the database has no entry for it.
    /// - Throws: ``GeoError`` when the tree or the record is corrupt, or an IPv6 address meets an IPv4-only database.
    public func lookup(_ address: IPAddress) throws(GeoError) -> GeoRecord? {
        var gaiError: Int32 = 0
        var mmdbError: Int32 = 0
        var result = address.withSockaddr { sockaddr in MMDB_lookup_sockaddr(self.mmdb, sockaddr, &mmdbError) }
        _ = gaiError
        gaiError = 0
        guard mmdbError == MMDB_SUCCESS else {
            throw GeoError(code: .lookupFailed, message: String(cString: MMDB_strerror(mmdbError)))
        }
        guard result.found_entry else { return nil }
        var record = GeoRecord(isInEuropeanUnion: false)
        record.country = try Self.string(&result.entry, ["country", "iso_code"])
        record.continent = try Self.string(&result.entry, ["continent", "code"])
        record.isInEuropeanUnion =
            try Self.value(&result.entry, ["country", "is_in_european_union"]) {
                $0.type == MMDB_DATA_TYPE_BOOLEAN ? $0.boolean : nil
            } ?? false
        record.latitude = try Self.value(&result.entry, ["location", "latitude"]) {
            $0.type == MMDB_DATA_TYPE_DOUBLE ? $0.double_value : nil
        }
        record.longitude = try Self.value(&result.entry, ["location", "longitude"]) {
            $0.type == MMDB_DATA_TYPE_DOUBLE ? $0.double_value : nil
        }
        record.accuracyRadiusKilometres = try Self.value(&result.entry, ["location", "accuracy_radius"]) {
            $0.type == MMDB_DATA_TYPE_UINT16 ? Int($0.uint16) : nil
        }
        return record
    }

    /// Decodes the complete record of `address` (every nested value), as the load-time probe does,
    /// so files whose damage lies deeper than the fields we read are refused too.
    func decodeWholeRecord(_ address: IPAddress) throws(GeoError) {
        var mmdbError: Int32 = 0
        var result = address.withSockaddr { sockaddr in MMDB_lookup_sockaddr(self.mmdb, sockaddr, &mmdbError) }
        guard mmdbError == MMDB_SUCCESS, result.found_entry else { return }
        var list: UnsafeMutablePointer<MMDB_entry_data_list_s>?
        let status = MMDB_get_entry_data_list(&result.entry, &list)
        MMDB_free_entry_data_list(list)
        guard status == MMDB_SUCCESS else {
            throw GeoError(code: .lookupFailed, message: String(cString: MMDB_strerror(status)))
        }
    }

    /// The country of an address for the origin rules: nil when not found or unreadable.
    public func country(of address: IPAddress) -> String? {
        (try? self.lookup(address))??.country
    }

    private static func string(_ entry: inout MMDB_entry_s, _ path: [String]) throws(GeoError) -> String? {
        try self.value(&entry, path) { data in
            guard data.type == MMDB_DATA_TYPE_UTF8_STRING, let bytes = data.utf8_string else { return nil }
            return String(decoding: UnsafeRawBufferPointer(start: bytes, count: Int(data.data_size)), as: UTF8.self)
        }
    }

    /// Reads the value at `path` with `MMDB_aget_value` (the array form; the variadic one does not import).
    private static func value<T>(_ entry: inout MMDB_entry_s, _ path: [String], _ extract: (MMDB_entry_data_s) -> T?)
        throws(GeoError) -> T?
    {
        var data = MMDB_entry_data_s()
        let status: Int32 = withCStrings(path) { cPath in MMDB_aget_value(&entry, &data, cPath) }
        if status == MMDB_LOOKUP_PATH_DOES_NOT_MATCH_DATA_ERROR { return nil }
        guard status == MMDB_SUCCESS else {
            throw GeoError(code: .lookupFailed, message: String(cString: MMDB_strerror(status)))
        }
        return data.has_data ? extract(data) : nil
    }
}

/// Calls `body` with a NULL-terminated array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let duplicates = strings.map { strdup($0) }
    defer { duplicates.forEach { free($0) } }
    let pointers = duplicates.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}

extension IPAddress {
    /// Runs `body` with a `sockaddr`: `sockaddr_in` for IPv4 (so libmaxminddb maps it into an
    /// IPv6 tree itself, as it does for `::ffff:a.b.c.d` peers), `sockaddr_in6` otherwise.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>) -> R) -> R {
        if self.isIPv4 {
            var v4 = sockaddr_in()
            v4.sin_family = sa_family_t(AF_INET)
            withUnsafeMutableBytes(of: &v4.sin_addr.s_addr) { $0.copyBytes(from: self.bytes[12..<16]) }
            return withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
        }
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        withUnsafeMutableBytes(of: &v6.sin6_addr) { $0.copyBytes(from: self.bytes) }
        return withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1, body) }
    }
}

/// An error of the geo layer, naming the file, key or value at fault.
public struct GeoError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Code
    public var message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable { case databaseUnreadable, lookupFailed, invalidRegionMap }
        private let value: Value
        /// The database file cannot be opened or is corrupt.
        public static var databaseUnreadable: Self { Self(value: .databaseUnreadable) }
        /// One lookup met corrupt data.
        public static var lookupFailed: Self { Self(value: .lookupFailed) }
        /// A region map file is invalid; the message has file:line.
        public static var invalidRegionMap: Self { Self(value: .invalidRegionMap) }
        public var description: String { "\(self.value)" }
    }

    public var description: String { "\(self.code): \"\(self.message)\"" }
}
