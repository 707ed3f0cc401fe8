import FleetGate
import Foundation
import Testing

/// Issue #20 without sockets: certificates, the revocation file, reputations, audit offsets.
@Suite("Trust: certificates, revocations, reputation", .timeLimit(.minutes(1)))
struct TrustTests {
    static let ca: FleetPKI = {
        let issued = try! FleetPKI.makeCA(name: "unit CA")
        return try! FleetPKI(certificatePEM: issued.certificatePEM, privateKeyPEM: issued.privateKeyPEM)
    }()

    @Test("Vehicle ids and regions are 1–128 letters, digits, '-', '_', '.': a forwarding replica's region header too")
    func names() {
        for name in ["eu-central", "us_east.2", "AP-South-1", String(repeating: "a", count: 128)] {
            #expect(VehicleIdentity.isValidName(name), "\(name)")
        }
        for name in ["", "eu central", "eu fleet.route=x", "eu\ncentral", "é", String(repeating: "a", count: 129)] {
            #expect(!VehicleIdentity.isValidName(name), "\(name)")
        }
    }

    @Test("A vehicle certificate carries its vehicle id and regions in SAN URIs; renewal keeps them with a new serial")
    func issueAndRenew() throws {
        let issued = try Self.ca.issueVehicle("car-7", regions: ["eu-west", "eu-central"], lifetime: 3600)
        let identity = try VehicleIdentity(issued.certificate)
        #expect(identity.vehicleID == "car-7")
        #expect(identity.regions == ["eu-central", "eu-west"])
        #expect(identity.notValidAfter.timeIntervalSinceNow <= 3601 && identity.notValidAfter.timeIntervalSinceNow > 3500)
        let renewed = try VehicleIdentity(Self.ca.renew(issued.certificate).certificate)
        #expect(renewed.vehicleID == "car-7" && renewed.regions == identity.regions)
        #expect(renewed.serial != identity.serial)
        // The server certificate names no vehicle: it grants nothing on the tunnel.
        #expect(throws: CredentialError.self) {
            try VehicleIdentity(Self.ca.issueServer(names: ["localhost"]).certificate)
        }
        #expect(throws: (any Error).self) { try Self.ca.issueVehicle("bad id/..", regions: ["eu-central"]) }
    }

    @Test("The CA refuses a key that is not its own")
    func caKeyMismatch() throws {
        let one = try FleetPKI.makeCA(name: "one")
        let two = try FleetPKI.makeCA(name: "two")
        #expect(throws: PKIError.self) {
            try FleetPKI(certificatePEM: one.certificatePEM, privateKeyPEM: two.privateKeyPEM)
        }
    }

    @Test("The revocation file: serials in any hex form, vehicle ids, comments; errors name the line")
    func revocationFile() throws {
        let list = try RevocationList(
            parsing: "# revoked\nserial 00:5F:3a:09   # stolen\n\nvehicle car-9\n", file: "rev")
        #expect(list.serials == ["5f3a09"])
        #expect(list.vehicles == ["car-9"])
        #expect(list.isRevoked(vehicleID: "car-9"))
        let issued = try VehicleIdentity(Self.ca.issueVehicle("car-1", regions: ["eu-central"]).certificate)
        #expect(!list.isRevoked(issued))
        #expect(try RevocationList(parsing: "serial \(issued.serial.uppercased())").isRevoked(issued))
        #expect(try RevocationList(parsing: "vehicle car-1").isRevoked(issued))
        #expect(throws: RevocationFileError(file: "rev", line: 2, "'xyz' is not a hex serial number")) {
            try RevocationList(parsing: "serial 01\nserial xyz", file: "rev")
        }
        #expect(throws: RevocationFileError.self) { try RevocationList(parsing: "revoke car-1") }
        #expect(throws: RevocationFileError.self) { try RevocationList(parsing: "vehicle") }
    }

    /// Audits of a car that fails a share `cheat` of them (every 1/cheat-th), until quarantine.
    static func auditsToQuarantine(failEvery: Int, threshold: Double = 0.95, limit: Int = 1_000) -> Int? {
        var reputation = AuditReputation()
        for audit in 1...limit {
            reputation.record(passed: failEvery == 0 || audit % failEvery != 0)
            if reputation.score < threshold { return audit }
        }
        return nil
    }

    @Test("Reputation: an always-wrong car is quarantined after 2 audits, a car wrong on every 10th answer after 40, an honest car never")
    func reputation() {
        #expect(Self.auditsToQuarantine(failEvery: 1) == 2)
        let sometimes = Self.auditsToQuarantine(failEvery: 10)
        #expect(sometimes == 40, "\(String(describing: sometimes))")
        #expect(Self.auditsToQuarantine(failEvery: 0) == nil)
        // One false failure in a long honest history does not quarantine.
        var honest = AuditReputation()
        for index in 0..<200 { honest.record(passed: index != 100) }
        #expect(honest.score > 0.95)
    }

    @Test("Audit scoring takes only the car's tokens: offsets count the prompt without ChatML's special tokens")
    func completionOffsets() {
        let prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        // llama-cpp-python's echo for prompt + "Hello!": offsets in the text without special tokens.
        let logprobs = Auditor.ScoreResponse.Logprobs(
            text_offset: [0, 4, 5, 7, 7, 8, 11, 17, 18, 23, 24],
            token_logprobs: [nil, -3.3, -7.2, -9.5, -0.05, -0.06, -0.01, -0.001, -4.2, -1.3, -0.5])
        #expect(Auditor.completionLogprobs(logprobs, prompt: prompt, text: "Hello!") == [-4.2, -1.3])
    }
}
