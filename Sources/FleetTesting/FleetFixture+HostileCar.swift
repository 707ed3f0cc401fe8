import FleetGate
import FleetScheduler
import Foundation

extension FleetFixture {
    /// Connects a ``HostileCar`` with a valid credential; when `waitForRegistration`, waits until
    /// the gateway routes to it (a car whose hello is meant to be refused does not wait).
    public func startHostileCar(
        _ vehicleID: String, _ behaviour: HostileCar.Behaviour, region: String = "eu-central",
        waitForRegistration: Bool = true, timeout: Duration = .seconds(10)
    ) async throws -> HostileCar {
        let credential = try FleetCredentials(secret: self.secret).issue(
            vehicleID: vehicleID, regions: [region], expires: Date().addingTimeInterval(3600))
        let car = try await HostileCar.connect(
            port: self.tunnelPort, vehicleID: vehicleID, credential: credential, region: region, behaviour: behaviour)
        if waitForRegistration {
            try await waitUntil(timeout: timeout, "hostile car \(vehicleID) registered") {
                self.gateway.core.registry.all().contains { $0.descriptor.vehicleID == vehicleID && !$0.draining }
            }
        }
        return car
    }
}
