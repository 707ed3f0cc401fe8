import Foundation

/// A copy of a file that only this process can reach, for a library that maps the file it opens.
///
/// libmaxminddb maps the database file. A file shortened in place while it is mapped (`> file`, a
/// partial copy on a full disk, `rsync --inplace`, a `cp` of a smaller database) makes the next read of
/// the lost pages a `SIGBUS`: the gateway died on the next lookup (helper-52's attack). Opening a
/// private copy — written here, mapped, then unlinked — leaves the mapping untouched by whatever
/// happens to the operator's file afterwards: a changed file is read only by the next reload.
enum PrivateFileCopy {
    /// Copies `path` into the temporary directory under a fresh name, hands the copy's path to `body`
    /// and removes the copy when `body` returns (a mapping `body` made keeps its data until unmapped).
    /// - Throws: ``GeoError`` (`databaseUnreadable`) naming `path` when it cannot be copied, or what
    ///   `body` throws.
    static func withCopy<T>(of path: String, _ body: (String) throws(GeoError) -> T) throws(GeoError) -> T {
        let copy = FileManager.default.temporaryDirectory
            .appendingPathComponent("fleetgate-\(UUID().uuidString)-\((path as NSString).lastPathComponent)").path
        do {
            try FileManager.default.copyItem(atPath: path, toPath: copy)
        } catch {
            throw GeoError(code: .databaseUnreadable, message: "\(path): cannot be read (\(Self.reason(error)))")
        }
        defer { try? FileManager.default.removeItem(atPath: copy) }
        return try body(copy)
    }

    private static func reason(_ error: any Error) -> String {
        let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError
        if let code = underlying?.code, underlying?.domain == NSPOSIXErrorDomain, let text = strerror(Int32(code)) {
            return String(cString: text)
        }
        return (error as NSError).localizedDescription
    }
}
