import Foundation

/// What a polled file looks like on disk, read through its symbolic links: a Kubernetes Secret is
/// swapped by its `..data` link, which leaves the link's own attributes alone (helper-73). The one
/// reader behind every watch of the gateway's files (``FleetTrust``'s revocation and quarantine files,
/// ``CredentialFilesWatcher``'s certificates and keys).
enum FileStamp {
    /// The file's identity and content stamp: the resolved path, device, inode, size and modification
    /// time (to the sub-microsecond); "missing" when it cannot be read.
    static func of(_ path: String) -> String {
        guard let (resolved, attributes) = Self.attributes(path) else { return "missing" }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        let identity = [FileAttributeKey.deviceIdentifier, .systemFileNumber, .size].map {
            attributes[$0].map { "\($0)" } ?? "-"
        }
        return "\(resolved) \(identity.joined(separator: ":")) \(modified)"
    }

    /// Whether the file is there and empty.
    static func isEmpty(_ path: String) -> Bool { (Self.attributes(path)?.1[.size] as? Int) == 0 }

    private static func attributes(_ path: String) -> (String, [FileAttributeKey: Any])? {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return (try? FileManager.default.attributesOfItem(atPath: resolved)).map { (resolved, $0) }
    }
}
