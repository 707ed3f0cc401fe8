import FleetGeo
import Foundation
import Testing

@testable import FleetGate

@Suite("GeoState")
struct GeoStateTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../FleetGeoTests/Fixtures").standardized

    /// An ASN or test edition written over the database file loaded, and every client then followed the
    /// `unknown` rule (a US client was served in zone eu).
    @Test("A database without countries is refused at start and reload, naming the file and its type")
    func noCountries() throws {
        let path = Self.fixtures.appendingPathComponent("MaxMind-DB-test-ipv4-24.mmdb").path
        #expect {
            _ = try GeoState.countryDatabase(at: path)
        } throws: {
            let text = "\($0)"
            return text.contains(path) && text.contains("has no countries")
        }
        for name in ["GeoIP2-City-Test.mmdb", "GeoIP2-Country-Test.mmdb", "GeoLite2-Country-Test.mmdb"] {
            #expect(try GeoState.countryDatabase(at: Self.fixtures.appendingPathComponent(name).path).hasCountries)
        }
        #expect { _ = try GeoState.countryDatabase(at: "/nonexistent/x.mmdb") } throws: {
            "\($0)".contains("/nonexistent/x.mmdb") && "\($0)".contains("not a readable file")
        }
        // A directory is not copied (it was, recursively, into the temporary directory).
        #expect { _ = try GeoState.countryDatabase(at: Self.fixtures.path) } throws: {
            "\($0)".contains("not a readable file")
        }
    }
}
