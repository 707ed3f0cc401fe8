import CoreMetrics
import FleetHTTP2
public import Foundation
public import Logging
import Synchronization

/// What the gateway believes about car identities now: the revocation file and the cars
/// quarantined by their audits (issue #20).
///
/// Responsibilities:
/// 1. hold the parsed revocation file, and re-read it when it changes (``reloadIfChanged()``,
///    polled by ``TrustWatcher``; also on SIGHUP and `POST /admin/reload`); a file that does not
///    parse changes nothing and is logged with its line;
/// 2. answer, at hello and after every reload, whether a car may stay: not revoked (by serial or
///    vehicle id) and not quarantined;
/// 3. remember quarantined vehicle ids until the gateway restarts (an operator who wants it
///    permanent revokes the vehicle).
public final class FleetTrust: Sendable {
    struct State {
        var revocations = RevocationList()
        var revocationStamp: String?
        var quarantined: [String: String] = [:]
    }
    private let state = Mutex(State())
    let file: String?
    public let metrics: TrustMetrics
    let logger: Logger

    init(revocationFile: String?, metrics: TrustMetrics, logger: Logger) {
        self.file = revocationFile
        self.metrics = metrics
        self.logger = logger
        _ = self.reloadIfChanged()
    }

    /// Re-reads the revocation file if its modification time changed (or `force`).
    /// - Returns: whether a new list was installed.
    @discardableResult
    public func reloadIfChanged(force: Bool = false) -> Bool {
        guard let file = self.file else { return false }
        let stamp = Self.stamp(file)
        if !force, self.state.withLock({ $0.revocationStamp }) == stamp { return false }
        do {
            // A missing file is an error, not an empty list (helper-73: deleting the file, or a typo in its
            // path, let every revoked car back in, logged at info); the previous list stays.
            let list = try RevocationList.load(path: file, missingIsEmpty: false)
            self.state.withLock {
                $0.revocations = list
                $0.revocationStamp = stamp
            }
            self.metrics.revocationReloadOK.increment()
            self.logger.info(
                "Revocation file loaded",
                metadata: [
                    "fleet.revoked.serials": "\(list.serials.count)",
                    "fleet.revoked.vehicles": "\(list.vehicles.count)",
                ])
            return true
        } catch {
            self.state.withLock { $0.revocationStamp = stamp }  // do not retry a bad file every poll
            self.metrics.revocationReloadFailed.increment()
            self.logger.error("Revocation file refused; the previous list stays", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// A polled file's identity: its path with every symlink resolved (a Kubernetes Secret is swapped by
    /// its `..data` link, which left the link's own modification time alone — helper-73), its modification
    /// time and size; `missing` when it is not there.
    static func stamp(_ path: String) -> String {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved) else { return "missing" }
        return
            "\(resolved) \(attributes[.modificationDate].map { "\($0)" } ?? "-") \(attributes[.size].map { "\($0)" } ?? "-")"
    }

    /// Why a car may not connect or stay, or nil if it may.
    func refusal(vehicleID: String, identity: VehicleIdentity?) -> String? {
        self.state.withLock { state in
            // The vehicle first: a `vehicle` entry read as "certificate revoked" sent an operator looking
            // for a serial that is not in the file (helper-73).
            if state.revocations.isRevoked(vehicleID: vehicleID) { return "vehicle revoked" }
            if let identity, state.revocations.isRevoked(identity) { return "certificate revoked" }
            if let reason = state.quarantined[vehicleID] { return "quarantined: \(reason)" }
            return nil
        }
    }

    /// Quarantines a vehicle (until restart); returns false if it already was.
    @discardableResult
    func quarantine(_ vehicleID: String, reason: String) -> Bool {
        let new = self.state.withLock { $0.quarantined.updateValue(reason, forKey: vehicleID) == nil }
        if new { self.metrics.quarantined.increment() }
        return new
    }

    /// Whether a vehicle is quarantined.
    public func isQuarantined(_ vehicleID: String) -> Bool { self.state.withLock { $0.quarantined[vehicleID] != nil } }

    /// The revocation list in force.
    public var revocations: RevocationList { self.state.withLock { $0.revocations } }
}
