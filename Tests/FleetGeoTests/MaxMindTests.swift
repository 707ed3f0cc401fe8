import FleetGeo
import Foundation
import Testing

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

@Suite("MaxMind databases through libmaxminddb")
struct MaxMindTests {
    static let city = try! MaxMindDatabase(path: fixture("GeoIP2-City-Test.mmdb"))

    @Test(
        "Known addresses resolve to their country and EU flag (the table in shared/geoip)",
        arguments: [
            ("81.2.69.142", "GB", false), ("::ffff:81.2.69.142", "GB", false), ("2.125.160.216", "GB", false),
            ("89.160.20.112", "SE", true), ("216.160.83.56", "US", false), ("175.16.199.0", "CN", false),
            ("2001:218::1", "JP", false), ("2a02:d180::1", "DE", true), ("2a02:cf40::1", "NO", false),
            ("2a02:d000::1", "CH", false),
        ])
    func known(ip: String, country: String, eu: Bool) throws {
        let address = try #require(IPAddress(ip))
        let record = try #require(try Self.city.lookup(address))
        #expect(record.country == country)
        #expect(record.isInEuropeanUnion == eu)
    }

    @Test("An IPv4-mapped IPv6 peer resolves exactly as its IPv4 address")
    func mapped() throws {
        for ip in ["81.2.69.142", "89.160.20.112", "216.160.83.56"] {
            let v4 = try #require(IPAddress(ip)), mapped = try #require(IPAddress("::ffff:" + ip))
            #expect(try Self.city.lookup(v4) == Self.city.lookup(mapped))
        }
    }

    @Test("Coordinates and accuracy come through where the database has them")
    func coordinates() throws {
        let address = try #require(IPAddress("89.160.20.112"))
        let record = try #require(try Self.city.lookup(address))
        #expect(record.latitude == 58.4167 && record.longitude == 15.6167)
        #expect(record.continent == "EU")
        #expect(record.accuracyRadiusKilometres != nil)
    }

    @Test("A record without a country key gives a nil country", arguments: ["2a02:d500::1"])
    func noCountry(ip: String) throws {
        let address = try #require(IPAddress(ip))
        let record = try #require(try Self.city.lookup(address))
        #expect(record.country == nil && record.continent == "EU")
    }

    @Test(
        "Addresses not in the database are not found",
        arguments: ["8.8.8.8", "1.1.1.1", "127.0.0.1", "10.0.0.1", "::1", "2001:db8::1"])
    func notFound(ip: String) throws {
        let address = try #require(IPAddress(ip))
        #expect(try Self.city.lookup(address) == nil)
    }

    @Test("Metadata names the database and its build time")
    func metadata() {
        #expect(Self.city.databaseType == "GeoIP2-City")
        #expect(Self.city.buildEpoch > 1_500_000_000)
        #expect(Self.city.ipVersion == 6)
    }

    @Test("An IPv6 lookup in an IPv4-only database is an error, not a crash")
    func ipv6InIPv4Database() throws {
        let db = try MaxMindDatabase(path: fixture("MaxMind-DB-test-ipv4-24.mmdb"))
        #expect(throws: GeoError.self) { try db.lookup(IPAddress("2001:218::1")!) }
        #expect(db.country(of: IPAddress("2001:218::1")!) == nil)
    }

    /// Files libmaxminddb 1.7.1 rejects at open, or whose probe addresses hit corrupt data.
    static let rejected = [
        "GeoIP2-City-Test-Invalid-Node-Count.mmdb", "GeoIP2-City-Test-Broken-Double-Format.mmdb",
        "bad/libmaxminddb-metadata-marker-only.mmdb", "bad/libmaxminddb-offset-integer-overflow.mmdb",
        "bad/libmaxminddb-deep-nesting.mmdb", "bad/libmaxminddb-deep-array-nesting.mmdb",
        "bad/libmaxminddb-oversized-array.mmdb",
        "bad/libmaxminddb-oversized-map.mmdb", "bad/cyclic-data-structure.mmdb", "bad/invalid-bytes-length.mmdb",
        "bad/invalid-data-record-offset.mmdb", "bad/invalid-map-key-length.mmdb", "bad/invalid-string-length.mmdb",
        "bad/metadata-is-an-uint128.mmdb", "bad/unexpected-bytes.mmdb", "bad/bad-unicode-in-map-key.mmdb",
        "LICENSE-MIT", "README.md",
    ]

    @Test("Corrupt, truncated and wrong-type files are refused at load", arguments: rejected)
    func rejectedAtLoad(name: String) {
        #expect(throws: GeoError.self) { _ = try MaxMindDatabase(path: fixture(name)) }
    }

    @Test(
        "Every bad-data file either fails cleanly or answers: none crashes",
        arguments: try! FileManager.default.contentsOfDirectory(atPath: fixture("bad")))
    func noCrash(name: String) {
        guard let db = try? MaxMindDatabase(path: fixture("bad/" + name)) else { return }
        for ip in ["1.1.1.1", "1.1.1.16", "1.1.1.32", "255.255.255.255", "81.2.69.142", "::1", "2001:218::1"] {
            _ = try? db.lookup(IPAddress(ip)!)
        }
        #expect(db.path.hasSuffix(name))
    }

    @Test("A missing file and an empty file are clear errors naming the path")
    func missingAndEmpty() {
        #expect { _ = try MaxMindDatabase(path: "/nonexistent/x.mmdb") } throws: {
            "\($0)".contains("/nonexistent/x.mmdb")
        }
        #expect(throws: GeoError.self) { _ = try MaxMindDatabase(path: "/dev/null") }
    }

    /// The file was mapped itself: shortened in place while open, the next lookup was a SIGBUS that
    /// killed the process (this test then dies instead of failing).
    @Test("A database file shortened or rewritten in place after opening does not reach the open database")
    func fileChangedInPlace() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-geo-\(UUID().uuidString).mmdb")
            .path
        try FileManager.default.copyItem(atPath: fixture("GeoIP2-City-Test.mmdb"), toPath: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let db = try MaxMindDatabase(path: path)
        #expect(truncate(path, 0) == 0)
        #expect(try db.lookup(IPAddress("89.160.20.112")!)?.country == "SE")
        try Data(repeating: 0xFF, count: 4096).write(to: URL(fileURLWithPath: path))
        #expect(try db.lookup(IPAddress("216.160.83.56")!)?.country == "US")
        #expect(db.path == path)
    }

    @Test(
        "With a database, origins follow country → region → zone",
        arguments: [
            ("89.160.20.112", "eu-north", "eu"), ("2a02:cf40::1", "eu-north", "eu"), ("81.2.69.142", "gb", "gb"),
            ("2a02:d000::1", "ch", "ch"), ("216.160.83.56", "us-east", "us"), ("2001:218::1", "ap-northeast", "apac"),
        ])
    func origins(ip: String, region: String, zone: String) {
        let origin = OriginResolver(map: .default, lookup: Self.city).resolve(IPAddress(ip))
        #expect(origin.region == region && origin.zone == zone && origin.rule == .database)
    }

    @Test("A public address the database lacks follows the unknown rule; no country key too")
    func unknownRule() {
        let resolver = OriginResolver(map: .default, lookup: Self.city)
        #expect(resolver.resolve(IPAddress("8.8.8.8")).rule == .unknown)
        #expect(resolver.resolve(IPAddress("2a02:d500::1")).rule == .unknown)
    }
}

@Suite("MaxMind lookups across threads")
struct MaxMindConcurrencyTests {
    @Test("Concurrent lookups from many tasks agree with single-threaded ones")
    func concurrent() async throws {
        let db = try MaxMindDatabase(path: fixture("GeoIP2-City-Test.mmdb"))
        let addresses = ["81.2.69.142", "89.160.20.112", "216.160.83.56", "2001:218::1", "2a02:d180::1", "8.8.8.8"].map
        { IPAddress($0)! }
        let expected = try addresses.map { try db.lookup($0)?.country }
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    for i in 0..<5_000
                    where try db.lookup(addresses[i % addresses.count])?.country != expected[i % addresses.count] {
                        return false
                    }
                    return true
                }
            }
            for try await ok in group { #expect(ok) }
        }
    }
}
