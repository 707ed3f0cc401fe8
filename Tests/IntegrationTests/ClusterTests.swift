import FleetAgent
import FleetProtocol
import FleetTesting
import Foundation
import HTTPTypes
import Testing

/// Issue #21 on loopback: three `fleetgate serve` processes and an etcd started here (its own
/// data directory and ports), cars spread across them, traffic sent to one replica only.
@Suite("Many gateways, one fleet", .serialized, .timeLimit(.minutes(2)))
struct ClusterTests {
    static let eu = "89.160.20.112"  // SE in MaxMind's test database
    static let us = "216.160.83.56"  // US

    static func replica(_ name: String, etcd: EtcdProcess, extra: [String] = []) async throws -> GatewayProcess {
        try await GatewayProcess.start(
            [
                "--etcd", etcd.clientURL, "--cluster-replica-id", name, "--cluster-internal-port", "0",
                "--cluster-lease-ttlseconds", "3", "--cluster-publish-interval-seconds", "0.25",
                "--cluster-max-digest-age-seconds", "2",
                "--geo-database-file", cityTestDatabase, "--geo-trusted-proxies", "127.0.0.1/32",
            ] + extra)
    }

    static func post(
        _ gateway: GatewayProcess, origin: String, id: String, prompt: String, maxTokens: Int
    ) async throws -> (client: RecordingClient, stream: RecordingStream) {
        let client = try await RecordingClient.connect(port: gateway.clientPort)
        var headers = HTTPFields()
        headers[HTTPField.Name("x-forwarded-for")!] = origin
        headers[HTTPField.Name("x-request-id")!] = id
        let stream = try await client.post(
            "/v1/chat/completions", json: chatBody(stream: true, maxTokens: maxTokens, prompt: prompt),
            headers: headers)
        return (client, stream)
    }

    /// The number in `"key":N` of a replica's `/readyz` (cars, replicas, remoteCars, …).
    static func readyCount(_ gateway: GatewayProcess, _ key: String) async throws -> Int? {
        let body = try await Self.ready(gateway).body
        guard let range = body.range(of: "\"\(key)\":") else { return nil }
        return Int(body[range.upperBound...].prefix { $0.isNumber })
    }

    /// The `"cluster":{…}` detail of a replica's `/readyz`, and its status.
    static func ready(_ gateway: GatewayProcess) async throws -> (status: Int, body: String) {
        try await gateway.get("/readyz", admin: true)
    }

    @Test("Forwarding to another replica's car, kill -9 of a replica mid-stream, etcd down and back: 0 zone violations")
    func cluster() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let r1 = try await Self.replica("r1", etcd: etcd)
        let r2 = try await Self.replica("r2", etcd: etcd)
        let r3 = try await Self.replica("r3", etcd: etcd)
        defer { [r1, r2, r3].forEach { $0.stop() } }
        // The EU car: primary tunnel to r2, second tunnel to r3. The US car on r1. r1 has no EU car.
        let euLog = temporaryJobLog("cluster-eu"), usLog = temporaryJobLog("cluster-us")
        let euCar = try AgentProcess(
            vehicleID: "eu-car", region: "eu-central", token: try r1.credential(vehicleID: "eu-car"),
            tunnelPort: r2.tunnelPort, jobLog: euLog,
            extra: ["--also-gateway", "127.0.0.1:\(r3.tunnelPort)", "--slots", "16", "--decode-tps", "60"])
        defer { euCar.stop() }
        let usCar = try AgentProcess(
            vehicleID: "us-car", region: "us-east", token: try r1.credential(vehicleID: "us-car", region: "us-east"),
            tunnelPort: r1.tunnelPort, jobLog: usLog,
            extra: ["--slots", "16", "--decode-tps", "60", "--gateway-tunnels", "1"])  // r1 only, whatever it learns
        defer { usCar.stop() }
        try await r2.waitForCars(1)
        try await r3.waitForCars(1)
        try await r1.waitForCars(1)
        try await waitUntil(timeout: .seconds(10), "r1 sees every replica's digest and a connection to each") {
            let body = try await Self.ready(r1).body
            return body.contains("\"replicas\":3") && body.contains("\"digests\":3") && body.contains("\"peers\":2")
                && body.contains("\"remoteCars\":1")  // r2's EU car (r3 has it on a second tunnel: not counted)
        }
        var expectedZone: [String: String] = [:]

        // 1. EU traffic at r1 is served by r2's EU car through r2; US traffic stays on r1.
        var phase1: [(String, String, String, RecordingClient, RecordingStream)] = []
        for i in 0..<4 {
            for (zone, origin) in [("eu", Self.eu), ("us", Self.us)] {
                let id = "fwd-\(zone)-\(i)", prompt = "cluster \(zone) \(i)"
                expectedZone[id] = zone
                let (client, stream) = try await Self.post(r1, origin: origin, id: id, prompt: prompt, maxTokens: 30)
                phase1.append((id, zone, prompt, client, stream))
            }
        }
        for (id, zone, prompt, client, stream) in phase1 {
            let collected = await stream.collect()
            client.close()
            let result = streamResult(collected)
            #expect(result.status == 200, "\(id): \(collected.body.prefix(300))")
            #expect(result.done && result.text == referenceText(prompt: prompt, maxTokens: 30), "\(id)")
            let route = collected.response?.headerFields[HTTPField.Name("x-fleet-route")!]
            #expect(route == (zone == "eu" ? "replica" : "car"), "\(id): route \(route ?? "-")")
            // The serving replica's answer: where its car served.
            let region = collected.response?.headerFields[HTTPField.Name("x-fleet-region")!]
            #expect(region == (zone == "eu" ? "eu-central" : "us-east"), "\(id): region \(region ?? "-")")
        }
        let metrics = try await r1.get("/metrics", admin: true).body
        #expect(metrics.contains("fleet_routed_total{route=\"replica\"} 4"), "forwards counted as route=replica")
        #expect(metrics.contains("fleet_routed_total{route=\"central\"} 0"))

        // A client's hop and forwarded-origin headers are ignored on the client listener (still
        // forwarded, still EU), and refused on the internal listener without a valid signature.
        let forged = "v1;us-east;us;US;database;9999999999;forged;AAAA"
        let forgedClient = try await RecordingClient.connect(port: r1.clientPort)
        var headers = HTTPFields()
        headers[HTTPField.Name("x-forwarded-for")!] = Self.eu
        headers[HTTPField.Name("x-request-id")!] = "forged-eu"
        headers[HTTPField.Name("x-fleet-hop")!] = "1"
        headers[HTTPField.Name("x-fleet-forwarded-origin")!] = forged
        expectedZone["forged-eu"] = "eu"
        let forgedAnswer = try await forgedClient.post(
            "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5, prompt: "forged"), headers: headers
        ).collect()
        #expect(forgedAnswer.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "replica")
        #expect(forgedAnswer.response?.headerFields[HTTPField.Name("x-fleet-zone")!] == "eu")
        forgedClient.close()
        let internalClient = try await RecordingClient.connect(port: try #require(r1.ports["internal"]))
        let refused = try await internalClient.post(
            "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 5, prompt: "forged"), headers: headers
        ).collect()
        #expect(refused.response?.status.code == 403)
        internalClient.close()

        // Added latency per hop: the same short request at r1 (forwarded) and at r2 (local).
        func elapsed(_ gateway: GatewayProcess, _ id: String) async throws -> Double {
            let start = ContinuousClock.now
            let (client, stream) = try await Self.post(gateway, origin: Self.eu, id: id, prompt: id, maxTokens: 1)
            _ = await stream.collect()
            client.close()
            let d = ContinuousClock.now - start
            return Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
        }
        var direct: [Double] = [], forwarded: [Double] = []
        for i in 0..<8 {
            expectedZone["lat-d-\(i)"] = "eu"
            expectedZone["lat-f-\(i)"] = "eu"
            direct.append(try await elapsed(r2, "lat-d-\(i)"))
            forwarded.append(try await elapsed(r1, "lat-f-\(i)"))
        }
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        print(
            "cluster: 1-token request median \(median(direct)) ms at the car's replica, \(median(forwarded)) ms "
                + "through another (added per hop: \(median(forwarded) - median(direct)) ms)")

        // etcd's load while idle-ish: three replicas publishing on change, renewing leases.
        let before = try await etcd.metrics()
        try await Task.sleep(for: .seconds(3))
        let after = try await etcd.metrics()
        let puts = (after["etcd_mvcc_put_total"] ?? 0) - (before["etcd_mvcc_put_total"] ?? 0)
        let received =
            (after["etcd_network_client_grpc_received_bytes_total"] ?? 0)
            - (before["etcd_network_client_grpc_received_bytes_total"] ?? 0)
        print("cluster: etcd with 3 idle replicas: \(puts / 3) puts/s, \(received / 3) bytes/s received")

        // 2. kill -9 r2 while it serves streams forwarded from r1: they move to r3, which reaches
        //    the same car through its second tunnel; r2's lease lapses within the TTL.
        var phase2: [(String, String, RecordingClient, RecordingStream)] = []
        for i in 0..<4 {
            let id = "kill-eu-\(i)", prompt = "cluster kill \(i)"
            expectedZone[id] = "eu"
            let (client, stream) = try await Self.post(r1, origin: Self.eu, id: id, prompt: prompt, maxTokens: 120)
            phase2.append((id, prompt, client, stream))
        }
        try await waitUntil(timeout: .seconds(10), "every stream streaming") {
            phase2.allSatisfy {
                String(decoding: $0.3.body, as: UTF8.self).components(separatedBy: "content").count > 4
            }
        }
        let killed = ContinuousClock.now
        r2.kill9()
        for (id, prompt, client, stream) in phase2 {
            let collected = await stream.collect()
            client.close()
            let result = streamResult(collected)
            #expect(result.errorCode == nil, "\(id): \(result.errorMessage ?? "")")
            #expect(result.done && result.text == referenceText(prompt: prompt, maxTokens: 120), "\(id) differs")
        }
        try await waitUntil(timeout: .seconds(8), "r2's lease lapsed") {
            try await Self.ready(r1).body.contains("\"replicas\":2")
        }
        print("cluster: r2 out of the membership \(ContinuousClock.now - killed) after kill -9 (lease TTL 3 s)")

        // 3. etcd down: every replica still ready, serving its own cars; zones still hold. (The EU
        //    car re-homed from r2 to r1 after the kill; the US car keeps its one tunnel to r1.)
        etcd.kill9()
        try await waitUntil(timeout: .seconds(10), "r1 degraded") {
            try await Self.ready(r1).body.contains("\"degraded\":true")
        }
        #expect(try await Self.ready(r1).status == 200)
        #expect(try await Self.ready(r3).status == 200)
        try await Task.sleep(for: .seconds(2.5))  // past cluster.maxDigestAgeSeconds
        // The zone that must serve each: r3 no longer sees r1's US car, and `us` is `preferred` in the
        // default map, so its request spills to the nearest zone r3 has capacity in (docs/regions.md).
        for (gateway, origin, zone, status) in [
            (r1, Self.us, "us", 200), (r3, Self.eu, "eu", 200), (r3, Self.us, "eu", 200),
        ] as [(GatewayProcess, String, String, Int)] {
            let id = "outage-\(origin == Self.us ? "us" : "eu")-\(gateway.clientPort)"
            expectedZone[id] = zone
            let (client, stream) = try await Self.post(gateway, origin: origin, id: id, prompt: id, maxTokens: 5)
            let collected = await stream.collect()
            client.close()
            #expect(streamResult(collected).status == status, "\(id): \(collected.body.prefix(200))")
        }

        // 4. etcd back: digests return and r1 forwards again.
        try await etcd.launch()
        try await waitUntil(timeout: .seconds(15), "digests back at r1") {
            let body = try await Self.ready(r1).body
            return body.contains("\"degraded\":false") && body.contains("\"digests\":2")
        }
        let (client, stream) = try await Self.post(r1, origin: Self.eu, id: "back-eu", prompt: "back", maxTokens: 5)
        expectedZone["back-eu"] = "eu"
        let collected = await stream.collect()
        client.close()
        #expect(streamResult(collected).status == 200, "\(collected.body.prefix(200))")

        // Zone violations, from the agents' job records alone.
        let records = try [euLog, usLog].flatMap { try JobLog.read(path: $0) }
        let regionZone = ["eu-central": "eu", "us-east": "us"]
        var violations = 0
        for record in records {
            guard let expected = expectedZone[record.requestID] else { continue }
            if record.zone != expected || regionZone[record.region] != expected { violations += 1 }
        }
        #expect(violations == 0)
        #expect(records.contains { $0.requestID == "fwd-eu-0" && $0.region == "eu-central" })
        print("cluster: \(records.count) jobs recorded, \(violations) zone violations")
    }

    /// etcd's JSON gateway: puts or deletes one key, as a replica that quarantined a car does.
    static func etcd(_ etcd: EtcdProcess, _ call: String, key: String, value: String? = nil) async throws {
        var body = ["key": Data(key.utf8).base64EncodedString()]
        if let value { body["value"] = Data(value.utf8).base64EncodedString() }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let result = try await Subprocess.run(
            "curl", ["-sf", "-X", "POST", "-d", json, etcd.clientURL + "/v3/kv/" + call])
        #expect(result.status == 0, "etcd \(call): \(result.stdout)")
    }

    @Test("A replica without cars of its own lists and forwards the models its peers' cars serve (helper-107: 404)")
    func replicaWithoutCars() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let r1 = try await Self.replica("r1", etcd: etcd)
        let r2 = try await Self.replica("r2", etcd: etcd)
        defer { [r1, r2].forEach { $0.stop() } }
        let car = try AgentProcess(
            vehicleID: "eu-car", region: "eu-central", token: try r1.credential(vehicleID: "eu-car"),
            tunnelPort: r2.tunnelPort, jobLog: temporaryJobLog("cluster-lone"),
            extra: ["--slots", "4", "--decode-tps", "200", "--gateway-tunnels", "1"])
        defer { car.stop() }
        try await r2.waitForCars(1)
        try await waitUntil(timeout: .seconds(10), "r1 sees r2's car and has a connection to r2") {
            let cars = try await Self.readyCount(r1, "remoteCars"), peers = try await Self.readyCount(r1, "peers")
            return cars == 1 && peers == 1
        }
        // What r1 knows of r2, for an operator (helper-107: counts only on /readyz).
        let status = try await r1.get("/admin/cluster", admin: true)
        #expect(status.status == 200 && status.body.contains(#""members":["r1","r2"]"#), "\(status.body)")
        #expect(status.body.contains(#""connected":["r2"]"#) && status.body.contains(#""models":["fleet-8b"]"#))
        #expect(status.body.contains("ageSeconds") && !status.body.contains("ownKeyLost"), "\(status.body)")
        #expect(
            status.body.replacingOccurrences(of: "\\/", with: "/").contains(#""prefix":"/fleetgate/""#),
            "\(status.body)")
        #expect(try await r1.get("/v1/models").body.contains("\"fleet-8b\""))
        #expect(try await r1.get("/v1/models/fleet-8b").status == 200)
        let (client, stream) = try await Self.post(r1, origin: Self.eu, id: "lone-1", prompt: "lone", maxTokens: 5)
        let collected = await stream.collect()
        client.close()
        #expect(collected.response?.status.code == 200, "\(collected.body.prefix(300))")
        #expect(collected.response?.headerFields[HTTPField.Name("x-fleet-route")!] == "replica")
    }

    @Test("A quarantine in etcd closes the car on every replica and refuses it; deleting the key lifts it")
    func sharedQuarantine() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try await Self.replica("a", etcd: etcd)
        let b = try await Self.replica("b", etcd: etcd)
        defer { [a, b].forEach { $0.stop() } }
        let car = try AgentProcess(
            vehicleID: "cheat-car", region: "eu-central", token: try a.credential(vehicleID: "cheat-car"),
            tunnelPort: a.tunnelPort, jobLog: temporaryJobLog("cluster-quarantine"),
            extra: ["--also-gateway", "127.0.0.1:\(b.tunnelPort)"])
        defer { car.stop() }
        try await a.waitForCars(1)
        try await b.waitForCars(1)
        // What replica A writes when the car fails its audits there.
        let key = "/fleetgate/quarantine/cheat-car"
        try await Self.etcd(etcd, "put", key: key, value: #"{"reason":"failed 2 of 2 audits","replica":"a","at":1}"#)
        try await waitUntil(timeout: .seconds(5), "the car closed on both replicas") {
            let (onA, onB) = (try await Self.readyCount(a, "cars"), try await Self.readyCount(b, "cars"))
            return onA == 0 && onB == 0
        }
        #expect(b.log.contains("Car no longer trusted; closing its tunnel"))
        // A new tunnel is refused at hello on either replica.
        let again = try AgentProcess(
            vehicleID: "cheat-car", region: "eu-central", token: try b.credential(vehicleID: "cheat-car"),
            tunnelPort: b.tunnelPort, jobLog: temporaryJobLog("cluster-quarantine-again"))
        try await Task.sleep(for: .seconds(1))
        #expect(try await Self.readyCount(b, "cars") == 0)
        again.stop()
        // The operator deletes the key: the car is welcome again.
        try await Self.etcd(etcd, "deleterange", key: key)
        try await Task.sleep(for: .milliseconds(500))
        let lifted = try AgentProcess(
            vehicleID: "cheat-car", region: "eu-central", token: try b.credential(vehicleID: "cheat-car"),
            tunnelPort: b.tunnelPort, jobLog: temporaryJobLog("cluster-quarantine-lifted"))
        defer { lifted.stop() }
        try await b.waitForCars(1)
    }

    @Test("One replica at two addresses: the car keeps one tunnel to it, not two that replace each other")
    func oneReplicaTwoAddresses() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try await Self.replica("a", etcd: etcd)
        defer { a.stop() }
        let first = try await TCPForwarder.start(to: a.tunnelPort)
        let second = try await TCPForwarder.start(to: a.tunnelPort)
        defer { [first, second].forEach { $0.stop() } }
        let car = try AgentProcess(
            vehicleID: "two-address-car", region: "eu-central", token: try a.credential(vehicleID: "two-address-car"),
            tunnelPort: first.port, jobLog: temporaryJobLog("cluster-two-addresses"),
            extra: ["--also-gateway", "127.0.0.1:\(second.port)"])
        defer { car.stop() }
        try await a.waitForCars(1)
        // Both tunnels hear `replicas` with the same `from`: the one A replaced is closed, its
        // address an alias of A from then on. Before the fix the two replaced each other forever.
        try await Task.sleep(for: .seconds(2))
        let settled = first.connections + second.connections
        try await Task.sleep(for: .seconds(3))
        #expect(first.connections + second.connections == settled, "the car kept re-dialling A")
        #expect(settled <= 3)
        #expect(try await Self.readyCount(a, "cars") == 1)
        let (client, stream) = try await Self.post(a, origin: Self.eu, id: "two-address-0", prompt: "x", maxTokens: 5)
        let collected = await stream.collect()
        client.close()
        #expect(streamResult(collected).status == 200, "\(collected.body.prefix(200))")
        let later = first.connections + second.connections - settled
        print("cluster: one replica at two addresses: \(settled) tunnel connections in 2 s, then \(later) in 3 s")
    }

    @Test("A car re-homes: kill -9 of one of its replicas → it dials a third; a drain → it moves to a new one")
    func rehome() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let a = try await Self.replica("a", etcd: etcd)
        let b = try await Self.replica("b", etcd: etcd)
        let c = try await Self.replica("c", etcd: etcd)
        defer { [a, b, c].forEach { $0.stop() } }
        // Configured with A and B only: C (and later A′) it learns from the gateways (control `replicas`).
        let log = temporaryJobLog("cluster-rehome")
        let car = try AgentProcess(
            vehicleID: "rehome-car", region: "eu-central", token: try a.credential(vehicleID: "rehome-car"),
            tunnelPort: a.tunnelPort, jobLog: log,
            extra: ["--also-gateway", "127.0.0.1:\(b.tunnelPort)", "--slots", "16", "--decode-tps", "60"])
        defer { car.stop() }
        try await a.waitForCars(1)
        try await b.waitForCars(1)
        #expect(try await Self.readyCount(c, "cars") == 0)
        var expectedZone: [String: String] = [:]

        // kill -9 A while B serves the car's streams: they finish; the car dials C.
        var streams: [(String, String, RecordingClient, RecordingStream)] = []
        for i in 0..<3 {
            let id = "rehome-b-\(i)", prompt = "rehome \(i)"
            expectedZone[id] = "eu"
            let (client, stream) = try await Self.post(b, origin: Self.eu, id: id, prompt: prompt, maxTokens: 90)
            streams.append((id, prompt, client, stream))
        }
        try await waitUntil(timeout: .seconds(10), "every stream streaming") {
            streams.allSatisfy { String(decoding: $0.3.body, as: UTF8.self).contains("content") }
        }
        let killed = ContinuousClock.now
        a.kill9()
        try await c.waitForCars(1)
        let rehomeAfterKill = ContinuousClock.now - killed
        for (id, prompt, client, stream) in streams {
            let collected = await stream.collect()
            client.close()
            let result = streamResult(collected)
            #expect(result.done && result.text == referenceText(prompt: prompt, maxTokens: 90), "\(id)")
        }
        #expect(try await Self.readyCount(b, "cars") == 1)
        // One primary between B and C: each sees the other's digest count the car at most once.
        try await waitUntil(timeout: .seconds(10), "the car counted once, by B or C") {
            let fromB = try await Self.readyCount(b, "remoteCars") ?? 0
            let fromC = try await Self.readyCount(c, "remoteCars") ?? 0
            let replicas = try await Self.readyCount(b, "replicas")
            return fromB + fromC == 1 && replicas == 2
        }

        // A′ joins; B drains (SIGTERM): the car leaves B for A′ (C it already has).
        let a2 = try await Self.replica("a2", etcd: etcd)
        defer { a2.stop() }
        try await waitUntil(timeout: .seconds(10), "B and C see A′") {
            let atB = try await Self.readyCount(b, "replicas")
            let atC = try await Self.readyCount(c, "replicas")
            return atB == 3 && atC == 3
        }
        let drained = ContinuousClock.now
        b.process.terminate()
        try await a2.waitForCars(1)
        let rehomeAfterDrain = ContinuousClock.now - drained
        #expect(try await Self.readyCount(c, "cars") == 1)
        try await waitUntil(timeout: .seconds(10), "the car counted once, by C or A′") {
            let fromC = try await Self.readyCount(c, "remoteCars") ?? 0
            let fromA2 = try await Self.readyCount(a2, "remoteCars") ?? 0
            let replicas = try await Self.readyCount(c, "replicas")
            return fromC + fromA2 == 1 && replicas == 2
        }
        for gateway in [c, a2] {
            let id = "rehome-after-\(gateway.clientPort)"
            expectedZone[id] = "eu"
            let (client, stream) = try await Self.post(gateway, origin: Self.eu, id: id, prompt: id, maxTokens: 5)
            let collected = await stream.collect()
            client.close()
            #expect(streamResult(collected).status == 200, "\(id): \(collected.body.prefix(200))")
        }
        print("cluster: car re-homed \(rehomeAfterKill) after kill -9 of a replica, \(rehomeAfterDrain) after a drain")

        let records = try JobLog.read(path: log)
        let violations = records.filter { record in expectedZone[record.requestID].map { record.zone != $0 } ?? false }
            .count
        #expect(violations == 0)
        #expect(Set(records.map(\.requestID)).isSuperset(of: expectedZone.keys))
    }

    @Test("A replica added later takes its share of the cars already connected; a stream in flight is not moved")
    func scaleOut() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let (a, b) = try await Self.movingPair(etcd)
        defer { [a, b].forEach { $0.stop() } }
        // Six cars, two tunnels each, configured with A and B: twelve tunnels, six on each.
        let log = temporaryJobLog("cluster-scale-out")
        let cars = try (0..<6).map { i in
            try AgentProcess(
                vehicleID: "spread-\(i)", region: "eu-central", token: try a.credential(vehicleID: "spread-\(i)"),
                tunnelPort: a.tunnelPort, jobLog: log,
                extra: ["--also-gateway", "127.0.0.1:\(b.tunnelPort)", "--slots", "4", "--decode-tps", "30"])
        }
        defer { cars.forEach { $0.stop() } }
        try await a.waitForCars(6)
        try await b.waitForCars(6)
        // Two streams in flight through A when C joins (10 s each: still running when the moves come):
        // their cars' tunnels to A are not idle, so A does not move them.
        var streams: [(String, RecordingClient, RecordingStream)] = []
        var busy: [String] = []
        for i in 0..<2 {
            let prompt = "scale out \(i)"
            let (client, stream) = try await Self.post(
                a, origin: Self.eu, id: "spread-\(i)", prompt: prompt, maxTokens: 300)
            streams.append((prompt, client, stream))
            busy.append(try #require(await stream.firstResponse()?.headerFields[HTTPField.Name("x-fleet-vehicle")!]))
        }
        let c = try await Self.replica("c", etcd: etcd, extra: Self.moveSoon)
        defer { c.stop() }
        let joined = ContinuousClock.now
        // The share is 4 of 12: A and B move two each (idle tunnels, after 2 s out of balance).
        try await waitUntil(timeout: .seconds(60), "four tunnels on each replica") {
            var counts: [Int] = []
            for gateway in [a, b, c] { counts.append(try await Self.readyCount(gateway, "cars") ?? -1) }
            return counts == [4, 4, 4]
        }
        let spread = ContinuousClock.now - joined
        let carsAtA = try await a.get("/admin/cars", admin: true)
        #expect(carsAtA.status == 200)
        for vehicle in busy {
            #expect(
                carsAtA.body.contains("\"vehicle\":\"\(vehicle)\""),
                "a busy car stays on A: \(carsAtA.body.prefix(300))")
        }
        #expect(!carsAtA.body.contains("\"draining\":true"), "the moved ones have left A: \(carsAtA.body.prefix(300))")
        for (prompt, client, stream) in streams {
            let collected = await stream.collect()
            client.close()
            let result = streamResult(collected)
            #expect(result.done && result.text == referenceText(prompt: prompt, maxTokens: 300), "\(prompt)")
        }
        // C's cars serve C's own traffic, and the cars still count once each in the digests.
        let (client, stream) = try await Self.post(c, origin: Self.eu, id: "spread-at-c", prompt: "at c", maxTokens: 5)
        let collected = await stream.collect()
        client.close()
        #expect(streamResult(collected).status == 200, "\(collected.body.prefix(200))")
        try await waitUntil(timeout: .seconds(10), "six cars counted once across the replicas") {
            var remote = 0
            for gateway in [a, b, c] { remote += try await Self.readyCount(gateway, "remoteCars") ?? 0 }
            // Each replica counts the others' primaries: the three sums add every car twice.
            return remote == 12
        }
        let moved = [try await Self.tunnelsMoved(a), try await Self.tunnelsMoved(b)]
        #expect(moved.reduce(0, +) >= 4, "\(moved)")
        print("cluster: a new replica held its share (4 of 12 tunnels) \(spread) after it joined; moved \(moved)")
    }

    @Test("Two replicas, cars with one tunnel and with two: only a one-tunnel car moves, once")
    func twoReplicasMixed() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.stop() }
        let (a, b) = try await Self.movingPair(etcd)
        defer { [a, b].forEach { $0.stop() } }
        // Three cars on both replicas, two with one tunnel on A: five tunnels on A, three on B.
        let log = temporaryJobLog("cluster-mixed")
        var cars: [AgentProcess] = []
        defer { cars.forEach { $0.stop() } }
        for i in 0..<5 {
            let id = "mixed-\(i)"
            let extra =
                i < 3 ? ["--also-gateway", "127.0.0.1:\(b.tunnelPort)"] : ["--gateway-tunnels", "1"]
            cars.append(
                try AgentProcess(
                    vehicleID: id, region: "eu-central", token: try a.credential(vehicleID: id),
                    tunnelPort: a.tunnelPort, jobLog: log, extra: extra))
        }
        // Four each: A moves one of its one-tunnel cars (a two-tunnel car could not go to B: it is there).
        try await waitUntil(timeout: .seconds(60), "four tunnels on each replica") {
            let atA = try await Self.readyCount(a, "cars")
            let atB = try await Self.readyCount(b, "cars")
            return atA == 4 && atB == 4
        }
        // Some rounds later: nothing more moved, nobody came back.
        try await Task.sleep(for: .seconds(8))
        let (atA, atB) = (try await Self.readyCount(a, "cars"), try await Self.readyCount(b, "cars"))
        #expect(atA == 4 && atB == 4)
        let moved = try await Self.tunnelsMoved(a) + (try await Self.tunnelsMoved(b))
        let moves = (a.log + b.log).split(separator: "\n").filter {
            $0.contains("Moving idle") || $0.contains("registered") || $0.contains("disconnected")
        }
        #expect(moved == 1, "\(moves.joined(separator: "\n"))")
        #expect(!a.log.contains("did not arrive"), "\(a.log.suffix(2_000))")
    }

    /// Out of balance for 2 s (not the default 40) before a replica moves tunnels.
    static let moveSoon = ["--cluster-rebalance-after-seconds", "2"]

    /// Replicas A and B that move tunnels after ``moveSoon``.
    static func movingPair(_ etcd: EtcdProcess) async throws -> (GatewayProcess, GatewayProcess) {
        (
            try await Self.replica("a", etcd: etcd, extra: Self.moveSoon),
            try await Self.replica("b", etcd: etcd, extra: Self.moveSoon)
        )
    }

    /// `fleet_cluster_tunnels_moved_total` of a replica (0 before the first).
    static func tunnelsMoved(_ gateway: GatewayProcess) async throws -> Int {
        let metrics = try await gateway.get("/metrics", admin: true).body
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("fleet_cluster_tunnels_moved_total ") }
        return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
    }
}
