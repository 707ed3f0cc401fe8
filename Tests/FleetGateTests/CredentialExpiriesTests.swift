import Testing

@testable import FleetGate

@Suite("Connected cars' credential expiries")
struct CredentialExpiriesTests {
    final class Tunnel {}

    @Test("Counted by tunnel: a takeover's old tunnel closing leaves the new one's entry")
    func byTunnel() {
        let expiries = CredentialExpiries()
        let old = Tunnel(), new = Tunnel(), other = Tunnel()
        expiries.set(ObjectIdentifier(old), expires: 100)
        expiries.set(ObjectIdentifier(new), expires: 150)
        expiries.set(ObjectIdentifier(other), expires: 1_000)
        #expect(expiries.count(expiringBefore: 200) == 2)
        expiries.remove(ObjectIdentifier(old))
        #expect(expiries.count(expiringBefore: 200) == 1)
        expiries.remove(ObjectIdentifier(new))
        #expect(expiries.count(expiringBefore: 200) == 0)
        #expect(expiries.count(expiringBefore: 2_000) == 1)
        withExtendedLifetime((old, new, other)) {}
    }
}
