import FleetConfiguration
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// Polls every file the gateway watches, once each `tunnel.trustPollSeconds`.
///
/// The revocation and quarantine files (issue #20, ``FleetTrust/reloadIfChanged(force:)``): a changed
/// one is installed and enforced on connected cars at once. (A second service polled them on its own
/// loop at the same interval; one loop now reads every watched file.)
///
/// The credential files a Kubernetes Secret or a certificate renewal (cert-manager, certbot) rewrites
/// in place: each kind is reloaded alone when one of its files changes:
/// - the client and tunnel listeners' certificate chains and keys, and the fleet CA (`tunnel.caFile`):
///   new TLS contexts for new connections (``GatewayReloader/reloadCertificates()``);
/// - the application key file (`auth.appKeysFile`, ``GatewayCore/reloadKeys()``);
/// - the API key file (`auth.apiKeysFile`, ``GatewayReloader/reloadAPIKeys()``);
/// - the admin token file (`admin.tokenFile`, ``GatewayReloader/reloadAdminToken(logRefusal:)``): a
///   rotated token replaces the running one, and the dashboard sessions of the old one end;
/// - the GeoIP database (`geo.databaseFile`, ``GatewayReloader/reloadGeoIPDatabase()``): a `geoipupdate`
///   replaces it every week or so; the running region map stays (an edited map waits for a reload).
///
/// Before, nothing reloaded them but SIGHUP or `POST /admin/reload`: a renewed certificate mounted from
/// a Secret was served only after a restart, and the old one expired in front of every client. Nothing
/// else is applied: an edit to `fleetgate.yaml` still waits for a reload. A change is applied once the
/// files look the same on two polls (``FileStamps``: not half-written), so within two
/// `tunnel.trustPollSeconds`. A certificate pair that does not load (renewed before its key) is logged,
/// shown on `/metrics`, and tried again when its files next change — the key's change then loads the
/// pair. The API keys are read with the configuration, as at start: a `fleetgate.yaml` that does not
/// load holds them back, and they are tried again at each poll until it does. An empty key file is not
/// applied by the watch (``isEmpty(_:)``).
struct CredentialFilesWatcher: Service {
    enum Kind: CaseIterable {
        case certificates
        case appKeys
        case apiKeys
        case adminToken
        case geoDatabase
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
        // With the fleet CA the tunnel's context checks cars against: one reload for every TLS file.
        let certificates =
            tls.flatMap { [$0.certificateChain, $0.privateKey] } + [configuration.tunnel.caFile].compactMap { $0 }
        if !certificates.isEmpty { files[.certificates] = certificates }
        if let path = core.keys.file { files[.appKeys] = [path] }
        if let path = configuration.auth.apiKeysFile { files[.apiKeys] = [path] }
        if let path = configuration.admin.tokenFile { files[.adminToken] = [path] }
        if let path = configuration.geo.databaseFile { files[.geoDatabase] = [path] }
        return files
    }

    /// How each file is stamped: by content (``FileStamp/of(_:)``), but the GeoIP database by its
    /// attributes (``FileStamp/attributes(of:)``): tens of megabytes, which `geoipupdate` replaces by a
    /// rename, are not read and hashed at every poll.
    private static func stamp(_ files: [Kind: [String]]) -> (String) -> String {
        let large = Set(files[.geoDatabase] ?? [])
        return { large.contains($0) ? FileStamp.attributes(of: $0) : FileStamp.of($0) }
    }

    /// Whether a key file is empty: not applied by the watch, which would refuse every client (helper-82:
    /// a writer that truncates and then writes). An empty file still revokes every key on SIGHUP or
    /// `POST /admin/reload`; the watch applies the file once it has content again.
    private func isEmpty(_ paths: [String], warn: Bool) -> Bool {
        // Through the links (``FileStamp``): a Secret volume's file is a link to `..data/NAME` (helper-83:
        // the link's own size is never 0).
        guard let path = paths.first(where: FileStamp.isEmpty) else { return false }
        guard warn else { return true }
        self.reloader.core.logger.warning(
            "A key file is empty: not applied until it has content (SIGHUP or POST /admin/reload applies it, revoking every key it held)",
            metadata: ["file.path": "\(path)"])
        return true
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await self.poll() }
    }

    private func poll() async throws {
        let core = self.reloader.core
        let interval = core.configuration.tunnel.trustPollInterval
        let first = Self.files(core)
        var stamps = FileStamps(first, stamp: Self.stamp(first))
        while true {
            try await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
            if core.trust.reloadIfChanged() { core.enforceTrust() }
            // The running configuration's files: a reload may have named others.
            let files = Self.files(core)
            for kind in stamps.due(files, in: Kind.allCases, stamp: Self.stamp(files)) {
                switch kind {
                case .certificates:
                    self.reloader.reloadCertificates()
                case .geoDatabase:
                    // Refused (a copy caught half-written past two polls, another edition), it is tried
                    // again when the file next changes, as a certificate pair is.
                    self.reloader.reloadGeoIPDatabase()
                case .appKeys:
                    guard !self.isEmpty(files[kind] ?? [], warn: true) else { continue }
                    _ = try? await self.reloader.reloadKeys(on: self.eventLoop).get()  // logged there
                case .apiKeys:
                    guard !self.isEmpty(files[kind] ?? [], warn: !stamps.isRetrying(kind)) else { continue }
                    // Refused, it is tried again at each poll: the configuration file it is read with may
                    // be what failed, and mending that changes no key file (helper-82).
                    if self.reloader.reloadAPIKeys(logRefusal: !stamps.isRetrying(kind)) {
                        stamps.applied(kind)
                    } else {
                        stamps.failed(kind)
                    }
                case .adminToken:
                    // Refused (short, or a read that failed: out of descriptors in a flood), the running
                    // token stays and the file is read again at each poll until it loads — a leaked
                    // token must not outlive its rotation because one read failed (helper-89).
                    if self.reloader.reloadAdminToken(logRefusal: !stamps.isRetrying(kind)) {
                        stamps.applied(kind)
                    } else {
                        stamps.failed(kind)
                    }
                }
            }
        }
    }
}
