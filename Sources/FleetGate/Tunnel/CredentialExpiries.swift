import Synchronization

/// When the credentials of the connected cars expire, for the count of those expiring soon
/// (`fleet_car_credentials_expiring`): a car's certificate lasts 7 days and is renewed daily by a job on
/// the car; when that job stops, the car drops out of the fleet within days and nothing said so
/// (helper-73). Keyed by tunnel, so a takeover's old tunnel closing does not remove the new one's entry.
final class CredentialExpiries: Sendable {
    private let expiries = Mutex<[ObjectIdentifier: Double]>([:])

    /// `tunnel`'s car registered with a credential that expires at `epochSeconds`.
    func set(_ tunnel: ObjectIdentifier, expires epochSeconds: Double) {
        self.expiries.withLock { $0[tunnel] = epochSeconds }
    }

    /// `tunnel` closed.
    func remove(_ tunnel: ObjectIdentifier) {
        _ = self.expiries.withLock { $0.removeValue(forKey: tunnel) }
    }

    /// Connected cars whose credential expires before `epochSeconds`.
    func count(expiringBefore epochSeconds: Double) -> Int {
        self.expiries.withLock { $0.values.count { $0 < epochSeconds } }
    }
}
