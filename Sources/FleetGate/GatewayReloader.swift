import CoreMetrics
import FleetConfiguration
import FleetGeo
import FleetScheduler
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// Applies a new configuration to a running gateway, all or nothing.
///
/// Responsibilities:
/// 1. read the configuration again (command line, environment, file; the file checked with
///    file:line:column) and load everything it names: region map, GeoIP database, TLS certificates
///    of the client and tunnel listeners, API key file;
/// 2. if anything fails, change nothing and say why (logged, counted, returned to `/admin/reload`);
/// 3. otherwise swap it in: region map and database, TLS contexts (next connection), API keys,
///    limits and timeouts (next request or connection), log level;
/// 4. keep the start values of keys that need a restart (ports, hosts, policy, central endpoints,
///    fleet secret, threads) and name them in the report.
public final class GatewayReloader: Sendable {
    /// What a reload did.
    public struct Report: Sendable, Encodable {
        /// The region map version now in use.
        public var regionsVersion: String
        /// The log level now in use.
        public var logLevel: String
        /// Keys whose change was ignored because it needs a restart.
        public var restartRequired: [String]
        /// Keys whose new value this reload put in effect (from the command line, environment or file;
        /// the region map's and certificates' contents are not keys). Empty for a configuration built in
        /// code.
        public var changed: [String] = []
        /// What the reload took but an operator should know (logged as warnings too).
        public var warnings: [String] = []
        /// Whether the region map now in use differs from the one before (its file is no key, so
        /// ``changed`` never says so; helper-131 read `fleet.config.changed=` after a map edit).
        public var regionsChanged = false
    }

    let core: GatewayCore
    let clientTLS: TLSContextBox
    let tunnelTLS: TLSContextBox
    let logLevel: LogLevelControl?
    let source: (@Sendable () throws -> GatewayConfiguration)?
    /// The keys' values at the start: those of restart-only keys are the running ones.
    private let startValues: ConfigValues
    /// One reload at a time; it holds every region's zone since the gateway started (``zoneChanges(_:)``).
    private let serial: Mutex<[String: String]>
    /// Whether the last whole reload, and the last region reload, were refused: a region reload that
    /// succeeds after a refused whole one leaves the broken file unapplied (helper-73: it set
    /// `fleet_config_last_reload_successful` back to 1).
    /// The same for the watch's own reloads (``CredentialFilesWatcher``): a certificate or API key file
    /// that did not load shows on `/metrics` (`fleet_config_last_reload_successful` 0, the alert
    /// FleetConfigReloadFailed), not only in a log line (helper-82).
    private let refused = Mutex(Refusals())

    struct Refusals {
        var whole = false
        var regions = false
        var certificates = false
        var apiKeys = false
        var appKeys = false
        var adminToken = false
        var geoDatabase = false
        var any: Bool {
            self.whole || self.regions || self.certificates || self.apiKeys || self.appKeys || self.adminToken
                || self.geoDatabase
        }
    }

    /// Records a reload's outcome on `/metrics`: `flag` set while its last attempt was refused, and the
    /// gauge clean only when none is. The gauge is written under the lock: two reloads ending at once
    /// would otherwise write it in the other order (helper-83).
    private func record(_ flag: WritableKeyPath<Refusals, Bool>, refused: Bool) {
        self.refused.withLock { refusals in
            refusals[keyPath: flag] = refused
            self.core.metrics.reloaded(successfully: !refusals.any)
        }
    }

    /// A watched file refused: its flag set (the reload gauge reads 0) and, unless this is a retry of a
    /// refusal already logged, the error logged. Returns false, the reload's answer.
    private func refused(
        _ flag: WritableKeyPath<Refusals, Bool>, _ message: Logger.Message, error: any Error, log: Bool
    ) -> Bool {
        self.record(flag, refused: true)
        if log { self.core.logger.error(message, metadata: ["error": "\(error)"]) }
        return false
    }

    private let reloadRuns = CoalescedJob<Result<Report, ReloadError>>()
    private let regionReloadRuns = CoalescedJob<Result<Report, ReloadError>>()
    private let keyReloadRuns = CoalescedJob<Result<Int, KeyFileError>>()

    /// The admin token in use (`admin.tokenFile`): a reload, or the watch, installs the file's new one.
    package let adminToken: AdminToken?

    init(
        core: GatewayCore, clientTLS: TLSContextBox, tunnelTLS: TLSContextBox, logLevel: LogLevelControl?,
        source: (@Sendable () throws -> GatewayConfiguration)?, adminToken: AdminToken? = nil
    ) {
        self.adminToken = adminToken
        self.serial = Mutex(core.geo.current.map.regions.mapValues(\.zone))
        self.core = core
        self.clientTLS = clientTLS
        self.tunnelTLS = tunnelTLS
        self.logLevel = logLevel
        self.source = source
        self.startValues = core.configuration.readValues
    }

    /// A listener's certificate chain or key, or the fleet CA, changed on disk (a renewal, a Kubernetes
    /// Secret, a CA rotation, issue #20):
    /// new TLS contexts for new connections from the running configuration's files; nothing else is
    /// applied. A pair that does not load — a key not yet renewed with its certificate — leaves the
    /// running contexts. Returns whether both loaded.
    @discardableResult
    func reloadCertificates() -> Bool {
        do {
            try self.serial.withLock { _ in
                let running = self.core.configuration
                self.install(client: try Gateway.clientContext(running), tunnel: try Gateway.tunnelContext(running))
            }
            self.record(\.certificates, refused: false)
            let metadata: Logger.Metadata = [
                "fleet.tls.not_after": "\(self.clientTLS.notAfter.map(String.init) ?? "-")",
                "fleet.tunnel.tls.not_after": "\(self.tunnelTLS.notAfter.map(String.init) ?? "-")",
            ]
            self.core.logger.info("TLS certificates reloaded for new connections", metadata: metadata)
            let now = Int64(Date().timeIntervalSince1970)
            if [self.clientTLS.notAfter, self.tunnelTLS.notAfter].contains(where: { ($0 ?? .max) < now }) {
                self.core.logger.warning("A TLS certificate now served has expired", metadata: metadata)
            }
            return true
        } catch {
            return self.refused(
                \.certificates, "TLS certificate reload refused; the running certificates stay", error: error, log: true
            )
        }
    }

    /// The GeoIP database file changed (a `geoipupdate`): the new database for new requests, the region
    /// map as it runs. Refused (not a country database, unreadable), the running one stays.
    @discardableResult
    func reloadGeoIPDatabase() -> Bool {
        do {
            let snapshot = try self.serial.withLock { _ in try self.core.geo.reloadDatabase() }
            self.record(\.geoDatabase, refused: false)
            self.core.logger.info(
                "GeoIP database reloaded",
                metadata: ["fleet.geoip.build_epoch": "\(snapshot.database?.buildEpoch ?? 0)"])
            return true
        } catch {
            return self.refused(
                \.geoDatabase, "GeoIP database reload refused; the running database stays", error: error, log: true)
        }
    }

    /// New TLS contexts for the listeners' next connections; a listener without TLS has none to swap.
    private func install(client: TLSContextBox.Served?, tunnel: TLSContextBox.Served?) {
        if let client { self.clientTLS.set(client) }
        if let tunnel { self.tunnelTLS.set(tunnel) }
    }

    /// The API key file (`auth.apiKeysFile`) changed: the keys the configuration gives now (the
    /// environment's and the file's, read as at start) replace the running ones; nothing else in the
    /// configuration is applied. Returns false (and logs) when the configuration does not load.
    /// - Parameter logRefusal: false for a retry of a refusal already logged (the watch tries again at each
    ///   poll: the configuration may be what failed, and its mend changes no key file).
    @discardableResult
    func reloadAPIKeys(logRefusal: Bool = true) -> Bool {
        guard let source = self.source else {
            self.core.logger.warning("API key file changed, but this gateway has no configuration to read it from")
            return false
        }
        do {
            // Read under the lock too: a whole reload between the read and the swap would be undone.
            let keys = try self.serial.withLock { _ in
                let keys = try source().auth.apiKeys
                var next = self.core.configuration
                next.auth.apiKeys = keys
                self.core.apply(next)
                return keys
            }
            self.record(\.apiKeys, refused: false)
            self.core.logger.info("API key file reloaded", metadata: ["fleet.keys": "\(keys.count)"])
            return true
        } catch {
            return self.refused(
                \.apiKeys,
                "API key file reload refused; the running keys stay until it loads (tried again at each poll)",
                error: error, log: logRefusal)
        }
    }

    /// The admin token file (`admin.tokenFile`) changed: its token replaces the running one for every
    /// request that follows, and the dashboard sessions the old one opened end — an operator rotates a
    /// leaked token without a restart, which would drop every relayed stream. A file that is unreadable
    /// or short leaves the running token (logged, and `fleet_config_last_reload_successful` 0; the watch
    /// tries it again at each poll). Returns whether the file's token is the one in use.
    /// - Parameter logRefusal: false for a retry of a refusal already logged.
    @discardableResult
    func reloadAdminToken(logRefusal: Bool = true) -> Bool {
        guard self.adminToken != nil, let file = self.core.configuration.admin.tokenFile else { return true }
        do {
            // Read and installed under the lock, as a whole reload does both: one between them would
            // put back the token it read before this one (helper-89).
            try self.serial.withLock { _ in self.install(adminToken: Array(try AdminGuard.readToken(file).utf8)) }
            self.record(\.adminToken, refused: false)
            return true
        } catch {
            return self.refused(
                \.adminToken,
                "Admin token file refused; the running token stays until it loads (tried again at each poll)",
                error: error, log: logRefusal)
        }
    }

    /// Installs the admin token file's token (a new generation when it differs: the old one's dashboard
    /// sessions end), and says so. Under ``serial``.
    private func install(adminToken bytes: [UInt8]) {
        guard self.adminToken?.replace(with: bytes) == true else { return }
        self.core.logger.notice(
            "Admin token replaced from its file; dashboard sessions opened with the old one ended",
            metadata: ["file.path": "\(self.core.configuration.admin.tokenFile ?? "-")"])
    }

    /// ``reload(regionsOnly:)`` on NIO's thread pool; callers that arrive while one runs share the next run.
    func reload(on eventLoop: any EventLoop, regionsOnly: Bool = false) -> EventLoopFuture<Result<Report, ReloadError>>
    {
        let runs = regionsOnly ? self.regionReloadRuns : self.reloadRuns
        return runs.run(on: eventLoop) {
            Result { () throws(ReloadError) in try self.reload(regionsOnly: regionsOnly) }
        }
    }

    /// The application key file's reload (``GatewayCore/reloadKeys()``), coalesced the same way.
    func reloadKeys(on eventLoop: any EventLoop) -> EventLoopFuture<Result<Int, KeyFileError>> {
        self.keyReloadRuns.run(on: eventLoop) {
            let result = Result { () throws(KeyFileError) in try self.core.reloadKeys() }
            // A refused application key file shows on `/metrics` as the other files do.
            let refused = if case .failure = result { true } else { false }
            self.record(\.appKeys, refused: refused)
            return result
        }
    }

    /// Reloads; one reload at a time.
    /// - Parameter regionsOnly: re-read only the running region map and GeoIP database files
    ///   (`POST /admin/regions/reload`), leaving every other key, TLS file and the log level as they are;
    ///   otherwise the whole configuration (SIGHUP, `POST /admin/reload`).
    /// - Throws: ``ReloadError`` with every reason; the running configuration stays.
    public func reload(regionsOnly: Bool = false) throws(ReloadError) -> Report {
        do {
            let report = try self.serial.withLock { zones in
                try self.reloadLocked(regionsOnly: regionsOnly, zones: &zones)
            }
            self.core.metrics.reloadOK.increment()
            // A whole reload loads the certificates and the API keys too, not the application key file
            // (``reloadKeys(on:)``): a refused one stays refused (helper-86).
            self.refused.withLock { refused in
                // A regions-only reload reads the database too: a refusal of the watch's is over (helper-112).
                if regionsOnly {
                    refused.regions = false
                    refused.geoDatabase = false
                } else {
                    refused = Refusals(appKeys: refused.appKeys)
                }
                if !refused.any { self.core.metrics.reloaded(successfully: true) }
            }
            self.core.logger.info(
                regionsOnly ? "Region map and GeoIP database reloaded" : "Configuration reloaded",
                metadata: Self.logMetadata(of: report))
            if !regionsOnly { self.core.metrics.restartPending.record(report.restartRequired.count) }
            for warning in report.warnings { self.core.logger.warning("Reload: \(warning)") }
            if !report.restartRequired.isEmpty {
                self.core.logger.warning(
                    "Changed keys need a restart; their running values stay",
                    metadata: ["fleet.config.keys": "\(report.restartRequired.joined(separator: ","))"])
            }
            return report
        } catch {
            let failure = error as? ReloadError ?? ReloadError(message: "\(error)")
            self.core.metrics.reloadFailed.increment()
            self.refused.withLock { refused in
                if regionsOnly { refused.regions = true } else { refused.whole = true }
                self.core.metrics.reloaded(successfully: false)
            }
            self.core.logger.error(
                "Reload refused; the running configuration stays", metadata: ["error": "\(failure.message)"])
            throw failure
        }
    }

    /// The reload line's metadata: the map's version and whether it changed, and the keys put in effect
    /// and kept for a restart, each only when there are some. helper-136: a map-only reload, which reads
    /// no key, logged `fleet.config.changed= fleet.config.restart_required=`, as if a key had changed to
    /// nothing.
    static func logMetadata(of report: Report) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "fleet.regions.version": "\(report.regionsVersion)", "fleet.regions.changed": "\(report.regionsChanged)",
        ]
        if !report.changed.isEmpty { metadata["fleet.config.changed"] = "\(report.changed.joined(separator: ","))" }
        if !report.restartRequired.isEmpty {
            metadata["fleet.config.restart_required"] = "\(report.restartRequired.joined(separator: ","))"
        }
        return metadata
    }

    private func reloadLocked(regionsOnly: Bool, zones: inout [String: String]) throws -> Report {
        let running = self.core.configuration
        var next: GatewayConfiguration
        if let source = self.source, !regionsOnly {
            do { next = try source() } catch { throw ReloadError(message: "\(error)") }
        } else {
            next = running
        }
        // Load everything first; nothing is swapped until all of it succeeded.
        let geo: GeoState.Snapshot
        do {
            geo = try self.core.geo.prepare(
                regionsFile: .some(next.geo.regionsFile), databaseFile: .some(next.geo.databaseFile))
        } catch { throw ReloadError(message: error.message) }
        try self.checkZones(of: geo.map, file: next.geo.regionsFile, since: zones)
        // helper-101: another map under the same version was taken without a word, and /admin/regions
        // and fleet_regions_info went on naming it as the old one.
        let runningMap = self.core.geo.current.map
        let warnings =
            geo.map != runningMap && geo.map.version == runningMap.version
            ? [
                "the region map changed but kept its version '\(geo.map.version)': /admin/regions and fleet_regions_info name the old map's version for it"
            ] : []
        next.geo.regionMap = geo.map
        // A map without the region of a central or audit endpoint (helper-101: swapped in by a map-only
        // reload, after which every reload and the next start failed).
        do { try next.checkEndpointRegions() } catch {
            throw ReloadError(
                message: "\(error) (\(regionsOnly ? "a running endpoint is there" : "a restart would refuse it"))")
        }
        // What a restart with this file would refuse is refused now, not at the next start, restart-only
        // keys included (helper-101: certificate authentication without its certificate was "reloaded";
        // helper-102: an admin token file that is not there).
        if !regionsOnly {
            do {
                try next.validateTrust()
                // The running path's token is read below, to install it.
                if let path = next.admin.tokenFile, path != running.admin.tokenFile {
                    _ = try AdminGuard.readToken(path)
                }
            } catch { throw ReloadError(message: "\(error) (a restart would refuse it)") }
        }
        if regionsOnly {
            self.install(geo, of: next, zones: &zones)
            self.core.apply(next)
            self.core.retireCarsOutsideMap()
            return Report(
                regionsVersion: geo.map.version, logLevel: running.logging.level, restartRequired: [],
                warnings: warnings, regionsChanged: geo.map != runningMap)
        }
        let restartOnly = Self.keepRestartOnlyKeys(from: running, in: &next)
        // Named by key, not by group (`central`, `cluster`), where the file's values say which key it was.
        // (Only when both were read from a stack: a configuration built in code records no values.)
        let recorded = !running.readValues.isEmpty && !self.startValues.isEmpty
        let restartRequired = restartOnly.changed.flatMap { name in
            let keys =
                recorded
                ? next.readValues.changedKeys(since: self.startValues).filter { $0.hasPrefix(name + ".") } : []
            return keys.isEmpty ? [name] : keys
        }
        // What took effect: changed since the running values, and not kept for a restart.
        let changed =
            recorded
            ? next.readValues.changedKeys(since: running.readValues).filter { key in
                !restartRequired.contains(key) && !restartOnly.all.contains { key == $0 || key.hasPrefix($0 + ".") }
            } : []
        // The admin token file (its path is restart-only, with the rest of `admin`): read now, so a file
        // that would stop the next start refuses the reload; its token is installed with the rest below.
        // (helper-73: a reload answered 200 while the old token went on working; it was restart-only.)
        let adminToken = try next.admin.tokenFile.map { Array(try AdminGuard.readToken($0).utf8) }
        try next.validate()
        let clientTLS = try Gateway.clientContext(next)
        let tunnelTLS = try Gateway.tunnelContext(next)
        let level = Logger.Level(rawValue: next.logging.level) ?? .info

        self.install(geo, of: next, zones: &zones)
        self.install(client: clientTLS, tunnel: tunnelTLS)
        self.core.apply(next)
        if let adminToken { self.install(adminToken: adminToken) }
        self.logLevel?.set(level)
        // Issue #20: the revocation file, at once; connected cars it now names are closed.
        self.core.trust.reloadIfChanged(force: true)
        self.core.enforceTrust()
        self.core.retireCarsOutsideMap()
        return Report(
            regionsVersion: geo.map.version, logLevel: level.rawValue, restartRequired: restartRequired,
            changed: changed, warnings: warnings, regionsChanged: geo.map != runningMap)
    }

    /// Refuses a map that puts a region in another zone than it has had since the gateway started: cars
    /// and central endpoints take their region's zone when they join, and would serve the old zone's
    /// traffic outside it. `zones` holds every installed map's zones, so it holds those of every car and
    /// endpoint too (helper-101: a region removed by one reload, its cars gone, and added back in another
    /// zone by the next was taken when only the running map and connected capacity were checked).
    private func checkZones(of map: RegionMap, file: String?, since zones: [String: String]) throws {
        let moved = map.regions.values.compactMap { region in
            zones[region.id].flatMap {
                $0 == region.zone ? nil : (RegionMap.ZoneChange(region: region.id, from: $0, to: region.zone), region)
            }
        }
        guard moved.isEmpty else {
            // file:line:column of the zone, as the map's other errors (left open by session 38).
            throw ReloadError(
                message: moved.sorted { $0.0.region < $1.0.region }.map { change, region in
                    "\(file ?? "the region map")\(region.zoneLocation.map { ":" + $0 } ?? ""): key 'regions.\(region.id).zone': \(change): it has been in zone '\(change.from)' since the gateway started (cars and central endpoints take it when they join); a region's zone changes only with a restart"
                }.joined(separator: "\n"))
        }
    }

    /// Swaps in a checked map and database with the files `next` names, keeps its zones for
    /// ``checkZones(of:file:since:)`` and shows its version on `/metrics`.
    private func install(_ geo: GeoState.Snapshot, of next: GatewayConfiguration, zones: inout [String: String]) {
        zones.merge(geo.map.regions.mapValues(\.zone)) { _, new in new }
        self.core.geo.install(geo, regionsFile: .some(next.geo.regionsFile), databaseFile: .some(next.geo.databaseFile))
        self.core.metrics.regionMapInstalled(version: geo.map.version)
    }
}

/// Why a reload was refused.
public struct ReloadError: Error, Sendable, CustomStringConvertible {
    /// Every reason, one per line (file:line:column where a file is at fault).
    public var message: String
    public var description: String { self.message }
}
