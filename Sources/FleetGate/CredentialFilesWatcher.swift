import Foundation
import NIOCore
import ServiceLifecycle

/// Polls the credential files a Kubernetes Secret or a certificate renewal (cert-manager, certbot)
/// rewrites in place, and reloads each kind alone when one of its files changes:
/// - the client and tunnel listeners' certificate chains and keys: new TLS contexts for new
///   connections (``GatewayReloader/reloadCertificates()``);
/// - the application key file (`auth.appKeysFile`, ``GatewayCore/reloadKeys()``);
/// - the API key file (`auth.apiKeysFile`, ``GatewayReloader/reloadAPIKeys()``).
///
/// Before, nothing reloaded them but SIGHUP or `POST /admin/reload`: a renewed certificate mounted from
/// a Secret was served only after a restart, and the old one expired in front of every client. Nothing
/// else is applied: an edit to `fleetgate.yaml` still waits for a reload (the API keys are read with the
/// configuration, as at start, so a `fleetgate.yaml` that does not load holds them back). A file that does not load (a
/// certificate renewed before its key) is logged and tried again when it next changes — the key's
/// change then loads the pair. Polled every `tunnel.trustPollSeconds`, as the CA and revocation files.
struct CredentialFilesWatcher: Service {
    enum Kind: CaseIterable {
        case certificates
        case appKeys
        case apiKeys
    }

    let reloader: GatewayReloader
    /// Where the application key file's reloads run, coalesced with SIGHUP's and the admin API's.
    let eventLoop: any EventLoop

    /// The files of each kind the running gateway reads; a kind with none is left out. The application
    /// key file is the one read at start (``AppKeys``, which a reload does not rename).
    static func files(_ core: GatewayCore) -> [Kind: [String]] {
        let configuration = core.configuration
        var files: [Kind: [String]] = [:]
        let tls = [configuration.listeners.tls.files, configuration.listeners.tunnel.files].compactMap { $0 }
        if !tls.isEmpty { files[.certificates] = tls.flatMap { [$0.certificateChain, $0.privateKey] } }
        if let path = core.keys.file { files[.appKeys] = [path] }
        if let path = configuration.auth.apiKeysFile { files[.apiKeys] = [path] }
        return files
    }

    /// A file's identity and content stamp, through symbolic links (a Secret's `..data` link moves to a
    /// new directory on each update): the resolved path, device, inode, size and modification time (to
    /// the sub-microsecond); "missing" when it cannot be read.
    static func stamp(_ path: String) -> String {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved) else { return "missing" }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1
        let identity = [FileAttributeKey.deviceIdentifier, .systemFileNumber, .size].map {
            attributes[$0].map { "\($0)" } ?? "-"
        }
        return "\(resolved) \(identity.joined(separator: ":")) \(modified)"
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await self.poll() }
    }

    private func poll() async throws {
        let core = self.reloader.core
        let interval = core.configuration.tunnel.trustPollInterval
        var stamps = FileStamps(Self.files(core), stamp: Self.stamp)
        while true {
            try await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
            // The running configuration's files: a reload may have named others.
            for kind in stamps.changed(Self.files(core), in: Kind.allCases, stamp: Self.stamp) {
                switch kind {
                case .certificates: self.reloader.reloadCertificates()
                case .appKeys: _ = try? await self.reloader.reloadKeys(on: self.eventLoop).get()  // logged there
                case .apiKeys: self.reloader.reloadAPIKeys()
                }
            }
        }
    }
}
