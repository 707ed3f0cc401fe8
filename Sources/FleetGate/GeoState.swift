public import FleetGeo
public import Foundation
import Logging
import Synchronization

/// The live region map and GeoIP database, swapped atomically on reload.
///
/// A request takes one ``Snapshot`` and uses it to the end, so a reload never changes the rules
/// under a request in flight, and a replaced database stays open until the last request that
/// holds it finishes (it is a reference-counted object).
public final class GeoState: Sendable {
    /// One consistent view: map, database and the resolver over both.
    public struct Snapshot: Sendable {
        public var map: RegionMap
        public var database: MaxMindDatabase?
        public var resolver: OriginResolver
        public var loadedAt: Date
    }

    private let state: Mutex<Snapshot>
    private let files: Mutex<(regions: String?, database: String?)>
    let logger: Logger

    init(map: RegionMap, regionsFile: String?, databaseFile: String?, logger: Logger) throws(GeoError) {
        self.files = Mutex((regionsFile, databaseFile))
        self.logger = logger
        let database = try databaseFile.map { path throws(GeoError) in try Self.countryDatabase(at: path) }
        self.state = Mutex(
            Snapshot(
                map: map, database: database, resolver: OriginResolver(map: map, lookup: database), loadedAt: Date()))
    }

    /// The current view.
    public var current: Snapshot { self.state.withLock { $0 } }

    /// Opens the database at `path` and checks that it maps addresses to countries: an ASN or ISP
    /// edition written over the file (a `geoipupdate` pointed at the wrong edition) loaded, and every
    /// client then followed the `unknown` rule.
    /// - Throws: ``GeoError`` naming the file (start-up adds the key, as a reload does).
    static func countryDatabase(at path: String) throws(GeoError) -> MaxMindDatabase {
        let database = try MaxMindDatabase(path: path)
        guard database.hasCountries else {
            throw GeoError(
                code: .databaseUnreadable,
                message:
                    "\(path): a '\(database.databaseType)' database has no countries; FleetGate needs a country database (GeoLite2-Country, GeoIP2-Country or -City, a DB-IP country edition)"
            )
        }
        return database
    }

    /// Loads and validates the map file (when one is given; otherwise the running map stays) and the
    /// database; swaps nothing (``install(_:regionsFile:databaseFile:)`` does).
    /// - Parameters: nil keeps the files in use.
    /// - Throws: a description of every problem.
    public func prepare(regionsFile: String?? = nil, databaseFile: String?? = nil) throws(GeoReloadError) -> Snapshot {
        let files = self.files.withLock { $0 }
        let regions = regionsFile ?? files.regions
        let databasePath = databaseFile ?? files.database
        var map = self.current.map
        if let file = regions {
            do { map = try RegionMap.load(path: file) } catch { throw GeoReloadError(message: error.description) }
        }
        var database: MaxMindDatabase?
        if let path = databasePath {
            do { database = try Self.countryDatabase(at: path) } catch {
                throw GeoReloadError(message: "key 'geo.databaseFile': \(error.message)")
            }
        }
        return Snapshot(
            map: map, database: database, resolver: OriginResolver(map: map, lookup: database), loadedAt: Date())
    }

    /// Swaps in a prepared snapshot and remembers the files it came from.
    public func install(_ snapshot: Snapshot, regionsFile: String?? = nil, databaseFile: String?? = nil) {
        self.files.withLock { files in
            if let regionsFile { files.regions = regionsFile }
            if let databaseFile { files.database = databaseFile }
        }
        self.state.withLock { $0 = snapshot }
    }

    /// Re-reads the database file alone, the running map staying (the file watch: a `geoipupdate` replaced
    /// it; helper-109: a fresh database was used only after a reload). The caller serialises reloads.
    /// - Throws: a description of the problem; the running database stays in place.
    func reloadDatabase() throws(GeoReloadError) -> Snapshot {
        // No map file to read (`.some(nil)`): the running map, with the database file read again.
        let snapshot = try self.prepare(regionsFile: .some(nil))
        self.install(snapshot)
        return snapshot
    }

    /// Re-reads the map file (when one is configured) and the database, validates both, then swaps.
    /// - Returns: the new snapshot.
    /// - Throws: a description of every problem; the running map and database stay in place.
    public func reload() throws(GeoReloadError) -> Snapshot {
        let snapshot = try self.prepare()
        self.install(snapshot)
        return snapshot
    }
}

/// Why a reload was refused.
public struct GeoReloadError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { self.message }
}
