import FleetProtocol
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
    /// - Throws: ``GeoError`` (`databaseUnreadable`) naming `path` when it is not a readable file, the
    ///   temporary directory when the copy fails there, or what `body` throws.
    static func withCopy<T>(of path: String, _ body: (String) throws(GeoError) -> T) throws(GeoError) -> T {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
            FileManager.default.isReadableFile(atPath: path)
        else {
            throw GeoError(code: .databaseUnreadable, message: "\(path): not a readable file")
        }
        let directory = FileManager.default.temporaryDirectory
        let copy = directory.appendingPathComponent(
            "fleetgate-\(UUID().uuidString)-\((path as NSString).lastPathComponent)"
        ).path
        // Removed however this ends: a copy cut short (a full disk) was left behind, reload after reload.
        defer { try? FileManager.default.removeItem(atPath: copy) }
        do {
            try FileManager.default.copyItem(atPath: path, toPath: copy)
        } catch {
            // The file is readable (checked above): the temporary directory is what failed, and is named.
            throw GeoError(
                code: .databaseUnreadable,
                message:
                    "\(path): cannot be copied to the temporary directory \(directory.path) (TMPDIR), where the gateway keeps the copy it maps: \(FileErrorReason.describe(error))"
            )
        }
        return try body(copy)
    }
}
