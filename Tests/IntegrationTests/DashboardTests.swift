import FleetGate
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import Testing

/// The admin dashboard in a real browser (headless Chromium): what it shows equals `/admin/cars` and
/// `/metrics` at that moment, and follows the fleet as cars join and streams run.
@Suite("Live fleet dashboard", .timeLimit(.minutes(2)))
struct DashboardTests {
    static let chromium = Subprocess.which("chromium") ?? Subprocess.which("chromium-browser")

    /// The page's DOM after a few (virtual) seconds of polling, in a browser profile that keeps cookies.
    static func dom(_ url: String, profile: String) async throws -> String {
        let result = try await Subprocess.run(
            Self.chromium!,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                "--virtual-time-budget=3000", "--dump-dom", url,
            ], timeout: 60)
        #expect(result.status == 0, "chromium: \(result.stderr.suffix(500))")
        return result.stdout
    }

    static func admin(_ fleet: FleetFixture, _ path: String) async throws -> (Int, String) {
        let client = try await RecordingClient.connect(port: fleet.adminPort)
        defer { client.close() }
        let result = try await client.send(
            HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1", path: path), body: nil
        ).collect()
        return (result.response?.status.code ?? 0, result.body)
    }

    /// What the page shows: total cars, active streams, cars per region, refreshes done.
    struct Shown: Equatable {
        var cars = -1, streams = -1, refreshes = 0
        var byRegion: [String: Int] = [:]
        var decisions = 0

        init(_ dom: String) {
            func number(_ id: String) -> Int {
                dom.firstMatch(of: try! Regex(#"id="\#(id)" data-value="(\d+)""#)).flatMap {
                    Int($0.output[1].substring!)
                } ?? -1
            }
            self.cars = number("total-cars")
            self.streams = number("active-streams")
            self.refreshes = dom.firstMatch(of: /data-refreshes="(\d+)"/).flatMap { Int($0.output.1) } ?? 0
            for match in dom.matches(of: /data-region="([a-z0-9-]+)" data-state="total">(\d+)</) {
                self.byRegion[String(match.output.1)] = Int(match.output.2)
            }
            // Rows of the decisions table: one per finished request.
            if let table = dom.firstMatch(of: /<table id="decisions">(.*?)<\/table>/.dotMatchesNewlines()) {
                self.decisions = table.output.1.matches(of: /<tr><td>/).count
            }
        }

        init(cars: [[String: Any]], metrics: String) {
            self.cars = cars.count
            for car in cars { self.byRegion[car["region"] as! String, default: 0] += 1 }
            self.streams = metrics.firstMatch(of: /\nfleet_active_streams (\d+)/).flatMap { Int($0.output.1) } ?? -1
        }
    }

    /// What `/admin/cars` and `/metrics` report now.
    static func reported(_ fleet: FleetFixture) async throws -> Shown {
        let cars = try JSONSerialization.jsonObject(with: Data(try await Self.admin(fleet, "/admin/cars").1.utf8))
        return Shown(cars: cars as! [[String: Any]], metrics: "\n" + (try await Self.admin(fleet, "/metrics").1))
    }

    @Test("Chromium shows the cars and streams /admin/cars and /metrics report, and follows them as they change")
    func dashboardMatchesTheGateway() async throws {
        guard Self.chromium != nil else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("chromium is not installed") }
            return
        }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-dash-\(UUID().uuidString)")
            .path
        defer { try? FileManager.default.removeItem(atPath: profile) }
        try await withFleet(cars: [
            CarSpec("car-a"), CarSpec("car-b", region: "eu-west"), CarSpec("car-c", region: "us-east"),
        ]) {
            fleet in
            let base = "http://127.0.0.1:\(fleet.adminPort)"
            // No session, no page; a wrong token, no session.
            #expect(try await Self.admin(fleet, "/dashboard").0 == 401)
            #expect(try await Self.admin(fleet, "/dashboard/login?token=wrong").0 == 401)

            // The one-time login sets the cookie and lands on the page.
            let token = fleet.gateway.dashboard.token
            let first = Shown(try await Self.dom("\(base)/dashboard/login?token=\(token)", profile: profile))
            var reported = try await Self.reported(fleet)
            #expect(first.refreshes >= 1)
            #expect(first.cars == 3 && first.cars == reported.cars)
            #expect(first.byRegion == reported.byRegion)
            #expect(first.streams == 0 && first.streams == reported.streams)

            // A fourth car joins and a long stream runs: the page (same profile, cookie only) follows.
            _ = try await fleet.startCar(CarSpec("car-d", region: "eu-central"))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            let running = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 4000), mode: .automatic)
            try await waitUntil("the stream runs") { fleet.gateway.core.requestsInFlight == 1 }
            let second = Shown(try await Self.dom("\(base)/dashboard", profile: profile))
            reported = try await Self.reported(fleet)
            #expect(second.cars == 4 && second.cars == reported.cars)
            #expect(second.byRegion == reported.byRegion)
            #expect(second.streams == 1 && second.streams == reported.streams)
            _ = running
            client.close()
            try await waitUntil("the stream ended") { fleet.gateway.core.requestsInFlight == 0 }

            // The ended request is in the decisions table; the streams count is back to 0.
            let third = Shown(try await Self.dom("\(base)/dashboard", profile: profile))
            #expect(third.streams == 0)
            #expect(third.decisions == 1)
        }
    }

    @Test("With an admin token: the login takes it once; the cookie opens GETs, never a state change")
    func cookieStandsInForTheTokenOnGets() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-admin-\(UUID().uuidString)")
        try "admin-token-0123456789abcdef\n".write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try await withFleet(configure: { $0.admin.tokenFile = file.path }) { fleet in
            func get(_ path: String, cookie: String? = nil, method: HTTPRequest.Method = .get) async throws
                -> (status: Int, setCookie: String?)
            {
                let client = try await RecordingClient.connect(port: fleet.adminPort)
                defer { client.close() }
                var request = HTTPRequest(method: method, scheme: "http", authority: "127.0.0.1", path: path)
                if let cookie { request.headerFields[.cookie] = cookie }
                if method == .post { request.headerFields[.contentType] = "application/json" }
                let result = try await client.send(request, body: method == .post ? ByteBuffer() : nil).collect()
                return (result.response?.status.code ?? 0, result.response?.headerFields[.setCookie])
            }
            #expect(try await get("/admin/cars").status == 401)
            #expect(try await get("/dashboard/login?token=admin-token-0123456789abcdeX").status == 401)
            let login = try await get("/dashboard/login?token=admin-token-0123456789abcdef")
            #expect(login.status == 303)
            let setCookie = try #require(login.setCookie)
            #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"))
            let cookie = String(setCookie.split(separator: ";")[0])
            #expect(try await get("/dashboard", cookie: cookie).status == 200)
            #expect(try await get("/admin/cars", cookie: cookie).status == 200)
            #expect(try await get("/admin/reload", cookie: cookie, method: .post).status == 401)
            #expect(try await get("/admin/cars", cookie: "fleet_dashboard=forged").status == 401)
        }
    }

    @Test("Without an admin token the generated one is in a file only its user reads, named in the log, never logged")
    func generatedTokenStaysOutOfTheLog() async throws {
        let gateway = try await GatewayProcess.start()
        defer { gateway.stop() }
        try await waitUntil(timeout: .seconds(5), "the token file logged") { gateway.log.contains("Dashboard:") }
        let line = try #require(gateway.log.split(separator: "\n").first { $0.contains("Dashboard:") })
        let path = try #require(line.split(separator: " ").first { $0.hasSuffix(".token") }.map(String.init))
        let token = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(token.count >= 16)
        #expect(!gateway.log.contains(token), "\(gateway.log.suffix(2_000))")
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(mode == 0o600, "mode \(String(mode, radix: 8))")
        #expect(try await gateway.get("/dashboard/login?token=\(token)", admin: true).status == 303)
        #expect(try await gateway.get("/dashboard/login?token=\(token)x", admin: true).status == 401)
        gateway.stop()
        #expect(!FileManager.default.fileExists(atPath: path), "the token file outlived the gateway")
    }
}
