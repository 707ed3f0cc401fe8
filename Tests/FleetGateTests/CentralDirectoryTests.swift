import FleetGeo
import FleetScheduler
import Foundation
import Logging
import NIOCore
import Testing

@testable import FleetGate

@Suite("CentralDirectory")
struct CentralDirectoryTests {
    static let a = "http://127.0.0.1:1/v1"
    static let b = "http://127.0.0.1:2/v1"

    /// Two endpoints of `eu-central` (zone `eu`), both listing `fleet-8b`.
    func directory() -> CentralDirectory {
        var configuration = GatewayConfiguration(fleetSecret: "s")
        configuration.central.endpoints = [
            .init(region: "eu-central", baseURL: Self.a, maxConcurrent: 4),
            .init(region: "eu-central", baseURL: Self.b, maxConcurrent: 4),
        ]
        let directory = CentralDirectory(configuration: configuration, client: nil, logger: Logger(label: "test"))
        directory.probed(Self.a, models: ["fleet-8b"])
        directory.probed(Self.b, models: ["fleet-8b"])
        return directory
    }

    func acquire(_ directory: CentralDirectory, at now: NIODeadline) -> CentralDirectory.Endpoint? {
        directory.acquire(model: "fleet-8b", zone: self.zone, preferring: "eu-central", excluding: [], now: now)
    }

    var zone: String { GatewayConfiguration(fleetSecret: "s").regionMap.zone(ofRegion: "eu-central")!.id }

    @Test(
        "Room is room for this attempt: not on endpoints already tried, nor for a continuation none can continue (helper-76)"
    )
    func roomForThisAttempt() throws {
        let directory = self.directory()
        let option = { (excluding: [String], continuation: Bool) in
            directory.option(model: "fleet-8b", zone: self.zone, excluding: excluding, continuation: continuation)
        }
        #expect(try #require(option([], false)).hasRoom)
        #expect(try #require(option([Self.a], false)).hasRoom, "b has room")
        #expect(try #require(option([Self.a, Self.b], false)).hasRoom == false, "both tried")
        #expect(try #require(option([], true)).hasRoom == false, "neither can continue another's answer")
        #expect(
            directory.acquire(
                model: "fleet-8b", zone: self.zone, preferring: "eu-central", excluding: [], continuation: true) == nil)
    }

    @Test("A busy endpoint is left alone for the seconds it asked, then taken again; busy is not a failure")
    func busyBackOff() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        // Many requests in flight, all answered busy: never ejected (three failures in a row would be),
        // and no estimate learned.
        let before = directory.all.first { $0.baseURL == Self.a }!.estimate
        var leases: [CentralDirectory.Endpoint] = []
        for _ in 0..<(2 * CentralDirectory.failuresToEject) {
            leases.append(try #require(self.acquire(directory, at: t0)))
        }
        #expect(Set(leases.map(\.baseURL)) == [Self.a, Self.b])
        for endpoint in leases { directory.release(endpoint, outcome: .failed, promptTokens: 10, busyFor: 7, now: t0) }
        // Both asked for 7 s: the zone has no room, but is only busy.
        #expect(directory.all.allSatisfy { $0.healthy && $0.consecutiveFailures == 0 && $0.inFlight == 0 })
        #expect(directory.all.first { $0.baseURL == Self.a }!.estimate == before)
        #expect(self.acquire(directory, at: t0 + .seconds(6)) == nil)
        let option = try #require(directory.option(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(6)))
        #expect(!option.hasRoom)
        #expect(directory.busyRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .milliseconds(5_500)) == 2)
        #expect(directory.busyRetryAfter(model: "fleet-8b", zone: self.zone, now: t0) == 7)
        // Its time passed: taken again, with room.
        #expect(self.acquire(directory, at: t0 + .seconds(7)) != nil)
        #expect(directory.busyRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(7)) == nil)
    }

    @Test("A zone's room, for any model: none while every endpoint is full or asked to be left alone; how long")
    func zoneRoom() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        func room(_ zone: String, _ now: NIODeadline) -> [String] {
            let r = directory.zoneRoom(zone, now: now)
            return ["\(r.endpoints)", "\(r.room)", "\(r.retryAfter)"]
        }
        #expect(room(self.zone, t0) == ["true", "true", "1"])
        #expect(room("us", t0) == ["false", "false", "1"])
        var leases: [CentralDirectory.Endpoint] = []
        for _ in 0..<8 { leases.append(try #require(self.acquire(directory, at: t0))) }
        #expect(room(self.zone, t0) == ["true", "false", "1"], "8 of 8 streams taken: full, 1 s")
        // Both answer busy, asking for 5 and 9 s: no room until the first of them is over.
        let a = try #require(leases.first { $0.baseURL == Self.a })
        let b = try #require(leases.first { $0.baseURL == Self.b })
        directory.release(a, outcome: .failed, promptTokens: 10, busyFor: 5, now: t0)
        #expect(room(self.zone, t0) == ["true", "false", "1"], "b still full")
        directory.release(b, outcome: .failed, promptTokens: 10, busyFor: 9, now: t0)
        #expect(room(self.zone, t0 + .seconds(1)) == ["true", "false", "4"])
        #expect(room(self.zone, t0 + .seconds(5)) == ["true", "true", "1"], "a's time passed")
    }

    @Test("One busy endpoint of two: the other is taken, and the zone is not reported busy")
    func oneBusy() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        let first = try #require(self.acquire(directory, at: t0))
        directory.release(first, outcome: .failed, promptTokens: 10, busyFor: 30, now: t0)
        for _ in 0..<3 {
            let next = try #require(self.acquire(directory, at: t0 + .seconds(1)))
            #expect(next.baseURL != first.baseURL)
            directory.release(next, outcome: .failed, promptTokens: 10, now: t0 + .seconds(1))
        }
        // The other failed three times (not busy): out of rotation; the busy one is still in, not taken.
        #expect(directory.all.first { $0.baseURL != first.baseURL }!.healthy == false)
        #expect(self.acquire(directory, at: t0 + .seconds(2)) == nil)
        #expect(directory.busyRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(2)) == 28)
        // A later, shorter busy answer (a request that was in flight) does not shorten the time asked
        // for before; once it has passed, the endpoint is taken again.
        directory.release(first, outcome: .failed, promptTokens: 10, busyFor: 1, now: t0 + .seconds(2))
        #expect(self.acquire(directory, at: t0 + .seconds(5)) == nil)
        #expect(self.acquire(directory, at: t0 + .seconds(30))?.baseURL == first.baseURL)
    }

    /// helper-131: an endpoint that listed its models and failed every completion was probed back
    /// in each second, three clients failing each time.
    @Test("Failing attempts take an endpoint out for a time a probe cannot cut short; a refusal is told when it is due")
    func ejectionOutlastsProbe() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        directory.probed(Self.b, models: nil, now: t0)  // only a serves
        for _ in 0..<CentralDirectory.failuresToEject {
            let lease = try #require(self.acquire(directory, at: t0))
            directory.release(lease, outcome: .failed, promptTokens: 10, failure: "status_5xx", now: t0)
        }
        #expect(directory.all.first { $0.baseURL == Self.a }?.healthy == false)
        #expect(directory.ejectedRetryAfter(model: "fleet-8b", zone: self.zone, now: t0) == 1)
        // Its list answers within the second: still out.
        directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .milliseconds(500))
        #expect(self.acquire(directory, at: t0 + .milliseconds(500)) == nil)
        // After it: the probe brings it back.
        directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .seconds(1))
        #expect(directory.ejectedRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(1)) == nil)
        // Back on trial and failing once: out twice as long; then silent for good, no longer expected back.
        let trial = try #require(self.acquire(directory, at: t0 + .seconds(1)))
        directory.release(trial, outcome: .failed, promptTokens: 10, now: t0 + .seconds(1))
        #expect(self.acquire(directory, at: t0 + .seconds(1)) == nil)
        #expect(directory.ejectedRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(1)) == 2)
        directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .milliseconds(2_900))
        #expect(directory.all.first { $0.baseURL == Self.a }?.healthy == false)
        #expect(directory.ejectedRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(6)) == nil)
        // Back and served: the run of ejections ends (the next failures start at 1 s again).
        directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .seconds(6))
        let lease = try #require(self.acquire(directory, at: t0 + .seconds(6)))
        let served = Outcome(ttftMilliseconds: 100, tpotMilliseconds: 10, outputTokens: 4, succeeded: true)
        directory.release(lease, outcome: served, promptTokens: 10, now: t0 + .seconds(6))
        for _ in 0..<CentralDirectory.failuresToEject {
            let lease = try #require(self.acquire(directory, at: t0 + .seconds(7)))
            directory.release(lease, outcome: .failed, promptTokens: 10, now: t0 + .seconds(7))
        }
        #expect(directory.ejectedRetryAfter(model: "fleet-8b", zone: self.zone, now: t0 + .seconds(7)) == 1)
    }

    @Test("A busy endpoint is left alone for at most maxBusySeconds, whatever it asked")
    func busyCap() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        let first = try #require(self.acquire(directory, at: t0))
        directory.release(first, outcome: .failed, promptTokens: 10, busyFor: 300, now: t0)
        let cap = Int64(CentralDirectory.maxBusySeconds)
        #expect(directory.all.first { $0.baseURL == first.baseURL }?.isBusy(at: t0 + .seconds(cap - 1)) == true)
        #expect(directory.all.first { $0.baseURL == first.baseURL }?.isBusy(at: t0 + .seconds(cap)) == false)
    }

    @Test("A probe answered busy keeps the endpoint's health and models, and leaves it alone")
    func busyProbe() throws {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        directory.probedBusy(Self.a, for: 5, now: t0)
        let a = try #require(directory.all.first { $0.baseURL == Self.a })
        #expect(a.healthy && a.models == ["fleet-8b"] && a.isBusy(at: t0 + .seconds(4)))
        #expect(self.acquire(directory, at: t0 + .seconds(1))?.baseURL == Self.b)
        // Not listed yet and answered busy: still out (nothing to serve with), probed again.
        directory.probed(Self.b, models: nil)
        directory.probedBusy(Self.b, for: 5, now: t0)
        #expect(directory.all.first { $0.baseURL == Self.b }?.healthy == false)
        // Out, but it asked for 5 s: not probed every second meanwhile.
        #expect(!directory.needsProbe(at: t0 + .seconds(1)) && directory.needsProbe(at: t0 + .seconds(5)))
    }

    @Test("A silent endpoint is news once, then once a minute, and again when it answers")
    func silenceIsLoggedOnce() {
        let directory = self.directory()
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        #expect(directory.probed(Self.a, models: ["fleet-8b"], now: t0) == .unchanged)
        #expect(directory.probed(Self.a, models: nil, now: t0) == .silent)
        let news = (1...59).map { directory.probed(Self.a, models: nil, now: t0 + .seconds(Int64($0))) }
        #expect(news.allSatisfy { $0 == .unchanged })  // probed every second, logged once
        #expect(directory.probed(Self.a, models: nil, now: t0 + .seconds(60)) == .stillSilent(seconds: 60))
        #expect(directory.probed(Self.a, models: nil, now: t0 + .seconds(61)) == .unchanged)
        #expect(directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .seconds(62)) == .answering)
        #expect(directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .seconds(63)) == .unchanged)
        #expect(directory.probed(Self.a, models: nil, now: t0 + .seconds(64)) == .silent)
        // An empty list is no answer either: still out, and not news of a return.
        #expect(directory.probed(Self.a, models: [], now: t0 + .seconds(65)) == .unchanged)
        #expect(directory.probed(Self.a, models: ["fleet-8b"], now: t0 + .seconds(66)) == .answering)
    }

    @Test("Logs and metrics show a base URL without its user or password")
    func redacted() {
        #expect(CentralDirectory.redacted("http://svc:S3cret@10.0.0.5:8000/v1") == "http://10.0.0.5:8000/v1")
        #expect(CentralDirectory.redacted("https://10.0.0.5/v1") == "https://10.0.0.5/v1")
        // A URL that does not parse, as a configuration error quotes it; a user alone; an @ in the path.
        #expect(CentralDirectory.redacted("http://u:Pa55@[::1/v1") == "http://[::1/v1")
        #expect(CentralDirectory.redacted("https://svc@host/v1") == "https://host/v1")
        // A password holding /, ? or # (base64), no scheme, a broken scheme: what precedes the last @ goes.
        #expect(CentralDirectory.redacted("http://cuser:Pa55/word@127.0.0.1:1/v1") == "http://127.0.0.1:1/v1")
        #expect(CentralDirectory.redacted("http://cuser:Pa55#word@h/v1") == "http://h/v1")
        #expect(CentralDirectory.redacted("cuser:Pa55word@host/v1") == "host/v1")
        #expect(CentralDirectory.redacted("http:/cuser:Pa55word@host/v1") == "host/v1")
        #expect(CentralDirectory.redacted("eu-central=http://u:p/w@h/v1") == "eu-central=http://h/v1")
    }

    @Test("/admin/config shows a central endpoint without its user or password")
    func configViewRedacted() throws {
        var configuration = GatewayConfiguration(fleetSecret: "s")
        configuration.central.endpoints = [
            GatewayConfiguration.CentralEndpoint(region: "eu-west", baseURL: "http://svc:S3cret@10.0.0.5:8000/v1")
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        let shown = String(decoding: try encoder.encode(ConfigView(configuration, regionsVersion: "v")), as: UTF8.self)
        #expect(shown.contains("eu-west=http://10.0.0.5:8000/v1") && !shown.contains("S3cret"), "\(shown)")
    }
}
