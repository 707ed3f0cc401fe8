import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetScheduler
import Foundation
import HTTPTypes
import Logging
import NIOCore
import Synchronization
import Testing

@testable import FleetGate

/// The head's check for a zone found without room (``GatewayCore/saturatedZone(of:connection:)``):
/// which requests it refuses before their body, and which it leaves to routing. The end-to-end case
/// (a burst at an endpoint's `maxConcurrent`) is `CentralTests.busyIsNotEmpty`.
@Suite("Saturated zone on the head")
struct SaturatedZoneTests {
    static let endpoint = "http://127.0.0.1:1/v1"
    static let database = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../FleetGeoTests/Fixtures/GeoIP2-City-Test.mmdb").standardized.path
    static let loopback = try! SocketAddress(ipAddress: "127.0.0.1", port: 40_000)

    /// A core with one central endpoint in `eu-central` taking one stream, serving `fleet-8b`, that
    /// believes loopback's `X-Forwarded-For`.
    func core() throws -> GatewayCore {
        var configuration = GatewayConfiguration(fleetSecret: String(repeating: "s", count: 32))
        configuration.central.endpoints = [.init(region: "eu-central", baseURL: Self.endpoint, maxConcurrent: 1)]
        configuration.trustedProxies = ["127.0.0.1/32"]
        configuration.geoipDatabase = Self.database
        let core = try GatewayCore(
            configuration: configuration,
            credentials: try FleetCredentials(secret: configuration.fleetSecret),
            metrics: GatewayMetrics(factory: NOOPMetricsHandler.instance), httpClient: nil,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        _ = core.central.probed(Self.endpoint, models: ["fleet-8b"])
        return core
    }

    func head(_ fields: [String: String] = [:]) -> HTTPRequest {
        var head = HTTPRequest(method: .post, scheme: "http", authority: "gw", path: "/v1/chat/completions")
        for (name, value) in fields { head.headerFields[HTTPField.Name(name)!] = value }
        return head
    }

    let connection = HTTPConnectionInfo(
        remoteAddress: Self.loopback, localAddress: nil, httpProtocol: "h2c", isTLS: false, viaProxyProtocol: false)

    @Test("Refused on the head only while marked, without room, and in the zone that was marked")
    func marked() throws {
        let core = try self.core()
        let zone = core.origin(of: self.head(), connection: self.connection).zone
        #expect(zone == "eu", "loopback is served in the default zone")
        #expect(core.saturatedZone(of: self.head(), connection: self.connection) == nil, "nothing marked")
        // Busy with room: nothing is marked.
        core.sawBusyZone(zone)
        #expect(core.busyZoneSeen.load(ordering: .relaxed) == 0, "the endpoint had room: nothing marked")
        let lease = try #require(
            core.central.acquire(model: "fleet-8b", zone: zone, preferring: "eu-central", excluding: []))
        core.sawBusyZone(zone)
        // Each check that refuses renews the 1 s window; each that must not refuse is followed by one that
        // must, so it cannot pass for the window having run out on a slow machine.
        func refused(_ fields: [String: String] = [:]) -> (zone: String, retryAfter: Int)? {
            core.saturatedZone(of: self.head(fields), connection: self.connection)
        }
        let first = refused()
        #expect(first?.zone == zone && first?.retryAfter == 1)
        // A residency header naming another zone is routing's to answer (400), as is a client of
        // another zone (the US one is `preferred`: its requests spill).
        #expect(refused(["x-fleet-residency": "us"]) == nil)
        #expect(refused(["x-fleet-residency": zone])?.zone == zone)
        #expect(refused(["x-forwarded-for": "216.160.83.56"]) == nil)
        // A Swedish client is in the marked zone.
        #expect(refused(["x-forwarded-for": "89.160.20.112"])?.zone == zone)
        // Its slot free again: routed; full again, refused (so the window had not run out meanwhile).
        core.central.release(lease, outcome: .failed, promptTokens: 10)
        #expect(refused() == nil)
        let again = try #require(
            core.central.acquire(model: "fleet-8b", zone: zone, preferring: "eu-central", excluding: []))
        #expect(refused()?.zone == zone)
        core.central.release(again, outcome: .failed, promptTokens: 10)
    }
}
