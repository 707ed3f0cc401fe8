import FleetGeo
import NIOCore

extension HarnessRun {
    /// Before the load: one small request from each origin country, the way the run sends them
    /// (`X-Forwarded-For` or PROXY v2). Where one is answered, the gateway's
    /// `x-fleet-origin-region` must be the country's region in the default map; otherwise the
    /// gateway does not trust the harness, reads another GeoIP database or region map, or does not
    /// expect PROXY v2 — and the run would measure the wrong thing, so it stops here and says which.
    func probe(_ gateway: GatewayUnderTest, group: any EventLoopGroup) async throws {
        let clients = self.scenario.clients
        let probes = clients.geo.enumerated().map { i, origin in
            RunPlan.Request(
                id: "lt-probe-\(self.scenario.seed)-\(i)", at: 0, measured: false, country: origin.country,
                address: origin.ranges.first.flatMap(IPv4Block.init).map { $0.address($0.hostMask / 2) } ?? "127.0.0.1",
                model: clients.models.first?.0 ?? "fleet-8b", promptTokens: 8, maxTokens: 1, streaming: false,
                cancelAfter: nil, seed: i, conversation: i)
        }
        let client = LoadClient(
            host: gateway.host, port: gateway.clientPort, group: group, connections: 1, ttftObjective: nil,
            originVia: clients.originVia)
        defer { client.close() }
        try await client.run(probes, origin: .now())
        await client.drain(timeout: .seconds(20))
        let results = client.completed
        let how =
            clients.originVia == .xff
            ? "X-Forwarded-For (the gateway must trust 127.0.0.0/8: --trusted-proxy 127.0.0.0/8)"
            : "a PROXY v2 header (the gateway must expect it from 127.0.0.0/8: --proxy-protocol-from 127.0.0.0/8)"
        var problems: [String] = []
        for r in results where r.status == 200 {
            let request = probes[r.index]
            let expected = RegionMap.default.region(forCountry: request.country)?.id ?? "-"
            if r.originRegion != expected {
                problems.append(
                    "a request from \(request.address) (\(request.country)) sent with \(how) was placed in region "
                        + "\(r.originRegion ?? "none"), not \(expected); the gateway must also read the GeoIP "
                        + "database \(self.geoDatabase) and the default region map")
            }
        }
        if results.allSatisfy({ $0.status != 200 }) {
            let seen = results.map { "\(probes[$0.index].country): \($0.error ?? "http_\($0.status)")" }
            let closed = results.allSatisfy { $0.status == 0 }
            problems.append(
                "no probe request was answered (\(seen.joined(separator: ", ")))"
                    + (closed ? "; the gateway closed the connections: does it expect \(how)?" : ""))
        }
        if !problems.isEmpty {
            throw HarnessError("the gateway at \(gateway.host):\(gateway.clientPort) is not set up for this run: "
                + problems.joined(separator: "; "))
        }
        self.log("fleet-load: probe: \(results.filter { $0.status == 200 }.count) of \(probes.count) origins placed in their regions")
    }
}
