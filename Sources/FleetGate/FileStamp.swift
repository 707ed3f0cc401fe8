import Crypto
import Foundation

#if canImport(Glibc)
    // `struct stat`'s fields are attributed to CoreFoundation's module, which includes <sys/stat.h>
    // (a release build with MemberImportVisibility refuses them without this import).
    import CoreFoundation
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a polled file looks like on disk, read through its symbolic links: a Kubernetes Secret is
/// swapped by its `..data` link, which leaves the link's own attributes alone (helper-73). The one
/// reader behind every watch of the gateway's files (``FleetTrust``'s revocation and quarantine files,
/// ``CredentialFilesWatcher``'s certificates and keys).
enum FileStamp {
    /// The file's identity and content stamp: the resolved path, device, inode, size, modification time
    /// to the nanosecond, and a digest of its bytes; "missing" when it cannot be read.
    ///
    /// The digest is what a rewrite cannot hide: a file rewritten in place to the same size, its
    /// modification time then restored (`touch -r`, `cp -p`, `rsync -t`), looked unchanged (helper-82).
    /// Not the status-change time, which would also catch it but moves with a `chmod` or `chown` that
    /// changes nothing (a kubelet resetting a Secret volume's owner: every file reloaded; helper-89).
    /// The watched files are small (certificates, keys, token and revocation lists) and read every few
    /// seconds at most.
    static func of(_ path: String) -> String {
        let resolved = Self.resolved(path)
        var status = stat()
        guard stat(resolved, &status) == 0 else { return "missing" }
        #if canImport(Darwin)
            let modified = status.st_mtimespec
        #else
            let modified = status.st_mtim
        #endif
        guard let bytes = FileManager.default.contents(atPath: resolved) else { return "missing" }
        let digest = SHA256.hash(data: bytes).prefix(16).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
        return
            "\(resolved) \(status.st_dev):\(status.st_ino):\(status.st_size) \(modified.tv_sec).\(modified.tv_nsec) \(digest)"
    }

    /// Whether the file is there and empty.
    static func isEmpty(_ path: String) -> Bool {
        var status = stat()
        return stat(Self.resolved(path), &status) == 0 && status.st_size == 0
    }

    private static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }
}
