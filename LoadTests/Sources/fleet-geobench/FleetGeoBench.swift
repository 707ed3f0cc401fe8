import FleetGeo
import FleetProtocol
import FleetScheduler
import Foundation

/// GeoIP and routing-filter costs, single thread (one core), release build.
///
/// 1. `MaxMindDatabase.lookup` over a fixed pseudo-random mix of IPv4 and IPv6 addresses;
/// 2. the whole origin decision per request: parse the peer address, look it up, map country →
///    region → zone (`OriginResolver.resolve`);
/// 3. the zone-filtered candidate search in a registry of cars in two zones.
///
/// Usage: `fleet-geobench DATABASE.mmdb [CARS]`
@main
struct FleetGeoBench {
    static func main() throws {
        let arguments = CommandLine.arguments
        guard arguments.count >= 2 else {
            print("usage: fleet-geobench DATABASE.mmdb [CARS]")
            return
        }
        let database = try MaxMindDatabase(path: arguments[1])
        let cars = arguments.count > 2 ? Int(arguments[2]) ?? 1000 : 1000
        var rng = SplitMix64(seed: 42)
        let addresses: [IPAddress] = (0..<100_000).map { i in
            if i % 4 == 3 {
                let words = (0..<8).map { _ in String(rng.next() & 0xFFFF, radix: 16) }
                return IPAddress("2a0" + String(rng.next() % 10) + ":" + words.dropFirst().joined(separator: ":"))!
            }
            let v = rng.next()
            return IPAddress("\(1 + v % 223).\((v >> 8) % 256).\((v >> 16) % 256).\((v >> 24) % 256)")!
        }
        let texts = addresses.map(\.description)

        func measure(_ name: String, iterations: Int, _ body: (Int) -> Int) {
            let clock = ContinuousClock()
            var sink = 0
            let elapsed = clock.measure { for i in 0..<iterations { sink &+= body(i) } }
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            print(
                String(
                    format: "%-46@ %12.0f /s  %8.3f µs each", name as NSString, Double(iterations) / seconds,
                    seconds / Double(iterations) * 1e6),
                sink == 42 ? "" : "")
        }

        print("database: \(database.path) (\(database.databaseType)); \(addresses.count) distinct addresses; 1 thread")
        measure("MaxMind lookup (parsed address)", iterations: 1_000_000) { i in
            ((try? database.lookup(addresses[i % addresses.count])) ?? nil)?.country?.count ?? 0
        }
        let resolver = OriginResolver(map: .default, lookup: database)
        measure("origin: parse + lookup + region + zone", iterations: 1_000_000) { i in
            resolver.resolve(IPAddress(texts[i % texts.count])).zone.count
        }
        let registry = FleetRegistry()
        let state = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2)
        for i in 0..<cars {
            let eu = i % 2 == 0
            _ = registry.register(
                CarDescriptor(
                    vehicleID: "car-\(i)", pseudonym: "p", region: eu ? "eu-central" : "us-east",
                    zone: eu ? "eu" : "us",
                    hardware: .hw4,
                    models: [ModelOffer(id: "fleet-8b", decodeTokensPerSecond: 20, prefillTokensPerSecond: 1200)],
                    slots: 2, policy: OwnerPolicy()),
                state: state)
        }
        measure("model served? (per request), \(cars) cars", iterations: 200_000) { _ in
            registry.models().contains("fleet-8b") ? 1 : 0
        }
        measure("zone-filtered candidates, \(cars) cars", iterations: 20_000) { _ in
            registry.candidates(model: "fleet-8b", zone: "eu", now: 0).count
        }
    }
}
