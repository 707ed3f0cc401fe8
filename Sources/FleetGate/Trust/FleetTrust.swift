import CoreMetrics
import FleetConfiguration
import FleetHTTP2
public import Foundation
public import Logging
import Synchronization

/// What the gateway believes about car identities now: the revocation file and the cars
/// quarantined by their audits (issue #20).
///
/// Responsibilities:
/// 1. hold the parsed revocation file, and re-read it when it changes (``reloadIfChanged()``,
///    polled by ``CredentialFilesWatcher``; also on SIGHUP and `POST /admin/reload`); a file that does not
///    parse changes nothing and is logged with its line;
/// 2. answer, at hello and after every reload, whether a car may stay: not revoked (by serial or
///    vehicle id) and not quarantined;
/// 3. remember quarantined vehicle ids: in memory until the gateway restarts, or, with
///    `audit.quarantineFile`, in that file too (`vehicle ID  # date reason` lines, the revocation
///    file's format), read at start and whenever it changes — a rollout no longer forgets them
///    (helper-73); deleting a line lifts that quarantine. An operator who wants one permanent on every
///    replica revokes the vehicle;
/// 4. with a cluster (issue #21), share quarantines with the other replicas through etcd
///    (``unpublishedQuarantines()``, ``installClusterQuarantines(_:)``): a car keeps tunnels to two
///    replicas, and one that failed its audits on one must not serve on the other.
public final class FleetTrust: Sendable {
    struct State {
        var revocations = RevocationList()
        var revocationStamp: String?
        var quarantined: [String: String] = [:]
        var quarantineStamp: String?
        /// Quarantined here and not yet in a read of the quarantine file, each with the ``appends``
        /// count once its line was written (`Int.max` until then, and for good if it could not be):
        /// a reload keeps them. A vehicle leaves when a read that began after its append finished
        /// finds the file, with its line or (an operator deleted it) without: a poll that read the file
        /// just before the append would otherwise drop it (helper-77), and one read in between must
        /// not make the line undeletable (helper-79).
        var unsaved: [String: Int] = [:]
        /// Lines this gateway has appended to the quarantine file.
        var appends = 0
        /// Quarantines whose line could not be written (a full disk, a directory gone): written again
        /// at each poll until one succeeds.
        var failedSaves: Set<String> = []
        /// Quarantines decided by any replica, as etcd holds them (`<prefix>quarantine/<vehicle>`):
        /// vehicle → reason. Empty without a cluster.
        var clusterQuarantined: [String: String] = [:]
        /// Quarantines decided here and not yet written to etcd (only with a cluster).
        var unpublished: [String: String] = [:]
        /// Quarantines decided here and written to etcd: deleting the key there lifts them here too,
        /// unless the quarantine file keeps them.
        var publishedHere: Set<String> = []
    }
    private let state = Mutex(State())
    let file: String?
    /// `audit.quarantineFile`.
    let quarantineFile: String?
    public let metrics: TrustMetrics
    let logger: Logger
    /// Whether quarantines decided here are shared through etcd (a cluster is configured).
    let sharesQuarantines: Bool

    init(
        revocationFile: String?, quarantineFile: String? = nil, sharesQuarantines: Bool = false, metrics: TrustMetrics,
        logger: Logger
    ) {
        self.file = revocationFile
        self.quarantineFile = quarantineFile
        self.sharesQuarantines = sharesQuarantines
        self.metrics = metrics
        self.logger = logger
        _ = self.reloadIfChanged()
    }

    /// Re-reads the revocation file and the quarantine file if their modification times changed (or `force`).
    /// - Returns: whether a new revocation list or quarantine list was installed.
    @discardableResult
    public func reloadIfChanged(force: Bool = false) -> Bool {
        let quarantines = self.reloadQuarantines(force: force)
        return self.reloadRevocations(force: force) || quarantines
    }

    /// Re-reads the quarantine file if it changed: its vehicles are the quarantined ones (a line deleted
    /// lifts one). A file that does not parse changes nothing and is logged; a missing one is empty.
    private func reloadQuarantines(force: Bool) -> Bool {
        guard let file = self.quarantineFile else { return false }
        self.retryFailedSaves()
        let readAfter = self.state.withLock { $0.appends }
        guard let loaded = self.loadIfChanged(file, stamp: \.quarantineStamp, force: force, missingIsEmpty: true)
        else { return false }
        switch loaded {
        case .success(let list):
            self.install(quarantines: list, readAfter: readAfter)
            self.logger.info(
                "Quarantine file loaded", metadata: ["fleet.quarantined.vehicles": "\(list.vehicles.count)"])
            return true
        case .failure(let error):
            self.logger.error("Quarantine file refused; the quarantines in force stay", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// Installs a read of the quarantine file that began when ``State/appends`` was `readAfter`: its
    /// vehicles, and those quarantined here whose line it could not have seen.
    func install(quarantines list: RevocationList, readAfter: Int) {
        let file = self.quarantineFile ?? "the quarantine file"
        self.state.withLock { state in
            var quarantined = Dictionary(
                uniqueKeysWithValues: list.vehicles.map { ($0, state.quarantined[$0] ?? "listed in \(file)") })
            state.unsaved = state.unsaved.filter { vehicle, appended in
                !list.vehicles.contains(vehicle) && appended > readAfter
            }
            for vehicle in state.unsaved.keys { quarantined[vehicle] = state.quarantined[vehicle] }
            state.quarantined = quarantined
            // With a cluster, the file's quarantines are shared too: one decided while etcd was down, before
            // a restart, or before the cluster was configured (helper-91). Each once a process, unless etcd
            // already lists it; an operator lifting one deletes its line as well as its key.
            guard self.sharesQuarantines else { return }
            for (vehicle, reason) in quarantined
            where state.clusterQuarantined[vehicle] == nil && !state.publishedHere.contains(vehicle) {
                state.unpublished[vehicle] = reason
            }
        }
    }

    /// Lines appended to the quarantine file so far (``State/appends``).
    var quarantineAppends: Int { self.state.withLock { $0.appends } }

    private func reloadRevocations(force: Bool) -> Bool {
        // A missing file is an error, not an empty list (helper-73: deleting the file, or a typo in its
        // path, let every revoked car back in, logged at info); the previous list stays.
        guard let file = self.file,
            let loaded = self.loadIfChanged(file, stamp: \.revocationStamp, force: force, missingIsEmpty: false)
        else { return false }
        switch loaded {
        case .success(let list):
            self.state.withLock { $0.revocations = list }
            self.metrics.revocationReloadOK.increment()
            self.logger.info(
                "Revocation file loaded",
                metadata: [
                    "fleet.revoked.serials": "\(list.serials.count)",
                    "fleet.revoked.vehicles": "\(list.vehicles.count)",
                ])
            return true
        case .failure(let error):
            self.metrics.revocationReloadFailed.increment()
            self.logger.error("Revocation file refused; the previous list stays", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// A polled file's list, when its identity (``FileStamp/of(_:)``) changed since the one kept at `stamp`, or
    /// `force`; nil when unchanged. The new identity is kept either way: a bad file is not read again
    /// every poll.
    private func loadIfChanged(
        _ file: String, stamp: WritableKeyPath<State, String?>, force: Bool, missingIsEmpty: Bool
    ) -> Result<RevocationList, RevocationFileError>? {
        let current = FileStamp.of(file)
        if !force, self.state.withLock({ $0[keyPath: stamp] }) == current { return nil }
        let loaded = Result { () throws(RevocationFileError) in
            try RevocationList.load(path: file, missingIsEmpty: missingIsEmpty)
        }
        self.state.withLock { $0[keyPath: stamp] = current }
        return loaded
    }

    /// Why a car may not connect or stay, or nil if it may.
    func refusal(vehicleID: String, identity: VehicleIdentity?) -> String? {
        self.state.withLock { state in
            // The vehicle first: a `vehicle` entry read as "certificate revoked" sent an operator looking
            // for a serial that is not in the file (helper-73).
            if state.revocations.isRevoked(vehicleID: vehicleID) { return "vehicle revoked" }
            if let identity, state.revocations.isRevoked(identity) { return "certificate revoked" }
            if let reason = state.quarantined[vehicleID] ?? state.clusterQuarantined[vehicleID] {
                return "quarantined: \(reason)"
            }
            return nil
        }
    }

    /// Quarantines a vehicle (until restart, or in `audit.quarantineFile` until its line is deleted);
    /// returns false if it already was.
    @discardableResult
    func quarantine(_ vehicleID: String, reason: String) -> Bool {
        let new = self.state.withLock { state in
            guard state.quarantined[vehicleID] == nil else { return false }
            state.quarantined[vehicleID] = reason
            if self.quarantineFile != nil { state.unsaved[vehicleID] = .max }
            if self.sharesQuarantines { state.unpublished[vehicleID] = reason }
            return true
        }
        guard new else { return false }
        self.metrics.quarantined.increment()
        if let file = self.quarantineFile, let error = self.save(vehicleID, reason: reason, to: file) {
            self.logger.error(
                "Quarantine not saved; written again at each poll, and held in memory meanwhile",
                metadata: ["fleet.quarantine.file": "\(file)", "error": "\(error)"])
        }
        return true
    }

    /// Appends a quarantine's line; the error, or nil once written (then a read that begins after it is
    /// believed, ``State/unsaved``). A failed one is kept for ``retryFailedSaves()``.
    private func save(_ vehicleID: String, reason: String, to file: String) -> (any Error)? {
        do {
            try RevocationList.append(["vehicle \(vehicleID)"], comment: reason, to: file, mode: 0o600)
        } catch {
            self.state.withLock { _ = $0.failedSaves.insert(vehicleID) }
            return error
        }
        self.state.withLock { state in
            state.appends += 1
            if state.unsaved[vehicleID] != nil { state.unsaved[vehicleID] = state.appends }
        }
        return nil
    }

    /// Writes the quarantines that could not be written again (each poll): a full disk that frees
    /// up, a directory put back. Without it they were lost at the next restart.
    private func retryFailedSaves() {
        guard let file = self.quarantineFile else { return }
        let claimed = self.state.withLock { state -> [(String, String)] in
            let claimed = state.failedSaves.compactMap { vehicle in state.quarantined[vehicle].map { (vehicle, $0) } }
            state.failedSaves = []
            return claimed
        }
        for (vehicle, reason) in claimed where self.save(vehicle, reason: reason, to: file) == nil {
            self.logger.notice("Quarantine saved on a later try", metadata: ["fleet.quarantine.file": "\(file)"])
        }
    }

    /// Whether a vehicle is quarantined.
    public func isQuarantined(_ vehicleID: String) -> Bool {
        self.state.withLock { $0.quarantined[vehicleID] != nil || $0.clusterQuarantined[vehicleID] != nil }
    }

    /// Quarantines decided here and not yet written to etcd: vehicle → reason.
    func unpublishedQuarantines() -> [String: String] { self.state.withLock { $0.unpublished } }

    /// A quarantine decided here is in etcd.
    func published(_ vehicleID: String) {
        self.state.withLock { state in
            guard state.unpublished.removeValue(forKey: vehicleID) != nil else { return }
            state.publishedHere.insert(vehicleID)
        }
    }

    /// Installs the quarantines etcd holds. A key deleted there lifts the quarantine on every replica,
    /// the one that decided it included (there its quarantine file, when it has one, keeps it until
    /// its line is deleted too).
    /// - Returns: whether a vehicle was added, so that connected cars must be checked (``GatewayCore/enforceTrust()``).
    func installClusterQuarantines(_ quarantines: [String: String]) -> Bool {
        self.state.withLock { state in
            for vehicle in state.clusterQuarantined.keys where quarantines[vehicle] == nil {
                guard state.publishedHere.remove(vehicle) != nil, self.quarantineFile == nil else { continue }
                state.quarantined[vehicle] = nil
            }
            defer { state.clusterQuarantined = quarantines }
            return quarantines.keys.contains { state.clusterQuarantined[$0] == nil }
        }
    }

    /// The revocation list in force.
    public var revocations: RevocationList { self.state.withLock { $0.revocations } }
}
