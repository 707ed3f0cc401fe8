import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a generated dashboard token is left for the operator when no `admin.tokenFile` is set:
/// a file only the gateway's user can read, named in the log instead of the token itself (a
/// credential in a log line reaches every log shipper and everyone who can read its store).
///
/// The file is `fleetgate-dashboard-<pid>-<random>.token` in `$XDG_RUNTIME_DIR` (the user's
/// private runtime directory) or, without one, the temporary directory; it is created with
/// `O_EXCL | O_NOFOLLOW` and mode 0600, and removed when the gateway stops.
struct DashboardTokenFile {
    /// The file's path.
    let path: String

    /// Writes `token` to a new file in `directory` (by default as above).
    /// - Throws: ``GatewayError`` naming the path and the system's reason.
    init(token: String, directory: String? = nil) throws {
        let directory = directory ?? Self.defaultDirectory()
        Self.removeStale(in: directory)
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let path = "\(directory)/fleetgate-dashboard-\(getpid())-\(suffix).token"
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw GatewayError(
                code: .invalidConfiguration,
                message: "cannot create the dashboard token file '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let bytes = Array((token + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            unlink(path)
            throw GatewayError(
                code: .invalidConfiguration, message: "cannot write the dashboard token file '\(path)'")
        }
        self.path = path
    }

    /// `$XDG_RUNTIME_DIR` when it names a directory, else the temporary directory.
    static func defaultDirectory() -> String {
        var isDirectory: ObjCBool = false
        if let runtime = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !runtime.isEmpty,
            FileManager.default.fileExists(atPath: runtime, isDirectory: &isDirectory), isDirectory.boolValue
        {
            return runtime
        }
        let temporary = FileManager.default.temporaryDirectory.path
        return temporary.hasSuffix("/") && temporary.count > 1 ? String(temporary.dropLast()) : temporary
    }

    /// Removes the file (at shutdown).
    func remove() { unlink(self.path) }

    /// Removes token files left by gateways of this user that were killed (SIGKILL, a crash) and so never
    /// removed theirs (helper-70): a live credential in a file nobody uses. A file whose pid still runs, or
    /// that another user owns, stays.
    static func removeStale(in directory: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix("fleetgate-dashboard-") && name.hasSuffix(".token") {
            let parts = name.dropFirst("fleetgate-dashboard-".count).split(separator: "-")
            guard let pid = parts.first.flatMap({ pid_t($0) }), pid > 0, pid != getpid() else { continue }
            // ESRCH: no such process. EPERM means it runs as someone else: not ours to judge.
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = "\(directory)/\(name)"
            // The link itself, not what it names (attributesOfItem does not follow a symlink).
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                attributes[.type] as? FileAttributeType == .typeRegular,
                (attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid()
            else { continue }
            unlink(path)
        }
    }
}
