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
    /// The file's identity and content stamp: the resolved path, device, inode, size, and its
    /// modification and status-change times to the nanosecond; "missing" when it cannot be read.
    ///
    /// The change time is what a rewrite cannot hide: a file rewritten in place to the same size,
    /// its modification time then restored (`touch -r`, `cp -p`, `rsync -t`), looked unchanged
    /// (helper-82); the kernel sets the change time on every write and no call sets it back.
    static func of(_ path: String) -> String {
        let resolved = Self.resolved(path)
        var status = stat()
        guard stat(resolved, &status) == 0 else { return "missing" }
        #if canImport(Darwin)
            let (modified, changed) = (status.st_mtimespec, status.st_ctimespec)
        #else
            let (modified, changed) = (status.st_mtim, status.st_ctim)
        #endif
        return
            "\(resolved) \(status.st_dev):\(status.st_ino):\(status.st_size) \(modified.tv_sec).\(modified.tv_nsec) \(changed.tv_sec).\(changed.tv_nsec)"
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
