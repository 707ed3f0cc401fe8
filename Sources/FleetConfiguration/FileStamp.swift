import Crypto
import Foundation

/// What a polled file looks like on disk, read through its symbolic links: a Kubernetes Secret is
/// swapped by its `..data` link, which leaves the link's own attributes alone (helper-73). The one
/// reader behind every watch of a file: the gateway's revocation and quarantine files (`FleetTrust`),
/// certificates and keys (`CredentialFilesWatcher`), and the agent's state file (`StateFileWatcher`).
package enum FileStamp {
    /// The stamp of a file that is not there or cannot be read.
    package static let missing = "missing"

    /// The file's content stamp: the resolved path and a digest of its bytes; ``missing`` when it cannot
    /// be read.
    ///
    /// The digest is what a rewrite cannot hide: a file rewritten in place to the same size, its
    /// modification time then restored (`touch -r`, `cp -p`, `rsync -t`), looked unchanged to a stamp of
    /// its size and times (helper-82). The status-change time would catch that too, but it moves with a
    /// `chmod` or `chown` that changes nothing (a kubelet resetting a Secret volume's owner: every file
    /// reloaded; helper-89). The watched files are small (certificates, keys, token and revocation
    /// lists) and read every few seconds at most.
    package static func of(_ path: String) -> String {
        let resolved = Self.resolved(path)
        guard let bytes = FileManager.default.contents(atPath: resolved) else { return Self.missing }
        let digest = SHA256.hash(data: bytes).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return "\(resolved) \(digest)"
    }

    /// A large file's stamp: the resolved path, its inode, size and modification time; ``missing`` when it
    /// is not there. For a file replaced by a rename (a `geoipupdate`), not one rewritten in place with
    /// its times restored, which only ``of(_:)`` sees.
    package static func attributes(of path: String) -> String {
        let resolved = Self.resolved(path)
        guard let a = try? FileManager.default.attributesOfItem(atPath: resolved) else { return Self.missing }
        let modified = (a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(resolved) \(a[.systemFileNumber] ?? 0) \(a[.size] ?? 0) \(modified)"
    }

    /// Whether the file is there and empty.
    package static func isEmpty(_ path: String) -> Bool {
        (try? FileManager.default.attributesOfItem(atPath: Self.resolved(path)))?[.size] as? Int == 0
    }

    private static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }
}
