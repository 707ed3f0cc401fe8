import Foundation
import Testing

@testable import FleetAgent

/// `fleet-agent pki request`'s key file (note 34 left "an existing 0644 key is used without a warning").
@Suite("A car's own key file")
struct VehicleKeyRequestTests {
    @Test("A new key is written 0600 and used again; an existing key open to other users is refused, naming the mode")
    func keyFileMode() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vkr-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keyFile = dir + "/car-key.pem"
        #expect(try VehicleKeyRequest.make(keyFile: keyFile, vehicleID: "car-1").madeKey)
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? Int == 0o600)
        #expect(try !VehicleKeyRequest.make(keyFile: keyFile, vehicleID: "car-1").madeKey)
        for mode in [0o644, 0o640, 0o602] {
            try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: keyFile)
            let error = #expect(throws: VehicleKeyRequestError.self) {
                try VehicleKeyRequest.make(keyFile: keyFile, vehicleID: "car-1")
            }
            #expect(
                error?.description.contains("mode \(String(mode, radix: 8))") == true, "\(error?.description ?? "")")
            #expect(error?.description.contains("chmod 600 \(keyFile)") == true)
        }
        // Through a link, the key's own mode counts, not the link's.
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile)
        try FileManager.default.createSymbolicLink(atPath: dir + "/link.pem", withDestinationPath: keyFile)
        #expect(try !VehicleKeyRequest.make(keyFile: dir + "/link.pem", vehicleID: "car-1").madeKey)
    }
}
