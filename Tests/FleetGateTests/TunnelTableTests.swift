import FleetHTTP2
import FleetProtocol
import FleetScheduler
import NIOEmbedded
import Synchronization
import Testing

@testable import FleetGate

@Suite("Tunnel table")
struct TunnelTableTests {
    static func descriptor(_ vehicleID: String) -> CarDescriptor {
        CarDescriptor(
            vehicleID: vehicleID, pseudonym: "p-\(vehicleID)", region: "eu-central", zone: "eu", hardware: .hw4,
            models: [ModelOffer(id: "m", decodeTokensPerSecond: 20, prefillTokensPerSecond: 1200)], slots: 2,
            policy: OwnerPolicy())
    }

    /// A tunnel's handle on a channel of its own (only its identity matters here).
    static func handle() -> HTTP2ConnectionHandle {
        let handler = HTTP2ConnectionHandler(role: .client, configuration: HTTP2Configuration())
        return HTTP2ConnectionHandle(handler, channel: EmbeddedChannel(handler: handler))
    }

    /// Session 36's CI failure: two hellos of one car on two event loops. Registered apart from its
    /// table entry, the newer could replace the older before the older was in the table; the older
    /// then stayed there, open, with no car in the registry. Here two threads register one vehicle
    /// id 2,000 times each: every registration but the last is handed to its replacer exactly once,
    /// and the table ends holding the registry's one car. (With the registration and the entry as
    /// two steps this failed 5 runs of 5 on two cores.)
    @Test("A car registered from two event loops at once: every replaced tunnel is handed back once, none is left")
    func concurrentTakeovers() async {
        let registry = FleetRegistry()
        let tunnels = TunnelTable()
        let state = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2)
        let rounds = 2_000
        let handles = (0..<2).map { _ in (0..<rounds).map { _ in Self.handle() } }
        let handedBack = HandedBack()
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<2 {
                let mine = handles[lane]
                group.addTask {
                    for handle in mine {
                        let (_, replaced) = tunnels.register(handle) {
                            let registered = registry.register(Self.descriptor("twice"), state: state, now: 0)
                            // A hello does more before its tunnel is in the table: widen that window.
                            for _ in 0..<20 { _ = registry.count }
                            return registered
                        }
                        if let replaced {
                            handedBack.count.withLock { $0[ObjectIdentifier(replaced.channel), default: 0] += 1 }
                        }
                    }
                }
            }
        }
        let returned = handedBack.count.withLock { $0 }
        #expect(tunnels.count == 1)
        #expect(returned.count == 2 * rounds - 1)
        #expect(returned.values.allSatisfy { $0 == 1 })
        let cars = registry.candidates(model: "m", zone: "eu", now: 0)
        #expect(cars.count == 1)
        if let car = cars.first {
            #expect(tunnels.handle(for: car.id).map { returned[ObjectIdentifier($0.channel)] == nil } == true)
        }
    }
}

/// How many times each tunnel (by channel) was handed back as replaced.
private final class HandedBack: Sendable {
    let count = Mutex<[ObjectIdentifier: Int]>([:])
}
