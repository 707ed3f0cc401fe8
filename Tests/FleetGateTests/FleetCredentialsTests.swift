import Foundation
import Testing

@testable import FleetGate

@Suite("Vehicle tokens")
struct FleetCredentialsTests {
    @Test("A token verifies for its vehicle; one whose vehicle id the trust files cannot name is refused (helper-77)")
    func vehicleIDs() throws {
        let credentials = try FleetCredentials(secret: String(repeating: "k", count: 32))
        let expires = Date().addingTimeInterval(3_600)
        let good = credentials.issue(vehicleID: "car-0042.eu_1", regions: ["eu-central"], expires: expires)
        #expect(try credentials.verify(good, vehicleID: "car-0042.eu_1").regions == ["eu-central"])
        for id in ["car#1", "car 1", "car\n1", ""] {
            let token = credentials.issue(vehicleID: id, regions: ["eu-central"], expires: expires)
            #expect(throws: CredentialError.self, "\(id.debugDescription)") {
                try credentials.verify(token, vehicleID: id)
            }
        }
    }
}
