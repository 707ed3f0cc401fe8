import FleetHTTP2
import Foundation
import HTTPTypes
@testable import FleetLoadKit
import FleetProtocol
import FleetTesting
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@Suite("Harness features: links, HTTP/1.1 share, PROXY v2, --target, conversations", .timeLimit(.minutes(1)))
struct HarnessFeatureTests {
    static func scenario(clients extra: String = "", links: String = "{wifi: 0.5, cellular: 0.5}") -> String {
        """
        name: t
        duration: 30
        fleet:
          - region: eu-central
            count: 10
            links: \(links)
        clients:
          arrivals: {process: poisson, rate: 20}
          geo:
            - {country: DE, share: 1, ranges: [91.0.0.0/24]}
        \(extra)
        """
    }

    @Test("links take a share or a profile; numbers left out keep FLEET.md's defaults")
    func linkProfiles() throws {
        let yaml = Self.scenario(links: "{cellular: {share: 0.5, rttMilliseconds: 120, uplinkMbps: 2}, satellite: 0.5}")
        let scenario = try Scenario.parse(yaml: yaml, file: "t.yaml")
        let links = Dictionary(uniqueKeysWithValues: scenario.fleet[0].links.map { ($0.0.type, $0.0.profile) })
        #expect(links[.cellular]?.rttMilliseconds == 120 && links[.cellular]?.uplinkMbps == 2)
        #expect(links[.cellular]?.jitterMilliseconds == LinkProfile.defaults(for: .cellular).jitterMilliseconds)
        #expect(links[.satellite] == LinkProfile.defaults(for: .satellite))
        let plan = RunPlan(scenario: scenario)
        #expect(plan.cars.allSatisfy { $0.link == links[$0.state.link] })
    }

    @Test("bad link profiles, HTTP/1.1 shares and origin modes are reported with file:line and value")
    func badKeys() {
        let yaml = Self.scenario(
            clients: "  http1Share: 1.5\n  originVia: carrier-pigeon",
            links: "{cellular: {share: 1, rttMilliseconds: -3, colour: red}}")
        do {
            _ = try Scenario.parse(yaml: yaml, file: "bad.yaml")
            Issue.record("a bad scenario was accepted")
        } catch {
            let text = error.description
            #expect(text.contains("bad.yaml:6:") && text.contains("fleet[0].links.cellular.rttMilliseconds") && text.contains("'-3'"), "\(text)")
            #expect(text.contains("bad.yaml:6:") && text.contains("'fleet[0].links.cellular.colour'"), "\(text)")
            #expect(text.contains("bad.yaml:11:") && text.contains("clients.http1Share") && text.contains("'1.5'"), "\(text)")
            #expect(text.contains("bad.yaml:12:") && text.contains("clients.originVia") && text.contains("carrier-pigeon"), "\(text)")
        }
    }

    @Test("the PROXY v2 header is haproxy's binary form, and the gateway's reader takes it")
    func proxyHeader() throws {
        let header = try #require(
            ProxyV2Header.encode(source: "91.0.0.7", sourcePort: 40_001, destination: "127.0.0.1", destinationPort: 8080))
        #expect(header.count == 28)
        #expect(Array(header[0..<12]) == [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
        #expect(Array(header[12..<16]) == [0x21, 0x11, 0x00, 12])  // v2 PROXY, TCP/IPv4, 12 bytes
        #expect(Array(header[16..<28]) == [91, 0, 0, 7, 127, 0, 0, 1, 0x9C, 0x41, 0x1F, 0x90])
        #expect(ProxyV2Header.encode(source: "::1", sourcePort: 1, destination: "127.0.0.1", destinationPort: 1) == nil)

        let proxied = ProxiedAddress()
        let channel = EmbeddedChannel(handler: ProxyProtocolHandler(proxied: proxied))
        try channel.writeInbound(ByteBuffer(bytes: header + Array("PRI *".utf8)))
        #expect(proxied.source == (try SocketAddress(ipAddress: "91.0.0.7", port: 40_001)))
        #expect(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) } == "PRI *")
    }

    @Test("the link emulator delays by RTT/2 ± jitter, keeps order, paces by bandwidth")
    func linkEmulator() throws {
        let profile = LinkProfile(rttMilliseconds: 40, jitterMilliseconds: 5, uplinkMbps: 1, downlinkMbps: 8)
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: LinkEmulator(profile: profile, seed: 1), loop: loop)
        // Not writeOutbound: it waits for the write's promise, which the link holds for its delay.
        channel.pipeline.writeAndFlush(ByteBuffer(string: "a"), promise: nil)
        channel.pipeline.writeAndFlush(ByteBuffer(string: "b"), promise: nil)
        loop.advanceTime(by: .milliseconds(14))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)  // at least 20 − 5 ms
        loop.advanceTime(by: .milliseconds(12))
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "a")
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "b")
        // 125,000 bytes at 1 Mbit/s: a second on the uplink before the one-way delay.
        channel.pipeline.writeAndFlush(ByteBuffer(repeating: 0, count: 125_000), promise: nil)
        loop.advanceTime(by: .milliseconds(990))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        loop.advanceTime(by: .milliseconds(40))
        #expect(try channel.readOutbound(as: ByteBuffer.self)?.readableBytes == 125_000)
        // Inbound: held the same way on the downlink.
        try channel.writeInbound(ByteBuffer(string: "c"))
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        loop.advanceTime(by: .milliseconds(26))
        #expect(try channel.readInbound(as: ByteBuffer.self).map { String(buffer: $0) } == "c")
    }

    @Test("--target takes loopback only", arguments: [
        ("127.0.0.1:8080", true), ("localhost:8080", true), ("[::1]:8080", true), ("10.0.0.5:8080", false),
        ("example.com:8080", false), ("127.0.0.1", false), ("127.0.0.1:0", false),
    ] as [(String, Bool)])
    func target(text: String, accepted: Bool) {
        let target = try? HarnessTarget(text, tunnelPort: 7443, adminPort: 9090, centralPort: nil)
        #expect((target != nil) == accepted)
    }

    @Test("a later turn continues an earlier conversation: same origin and model, its previous turn kept")
    func conversations() throws {
        let scenario = try Scenario.parse(yaml: Self.scenario(clients: "  multiTurnShare: 0.5\n  http1Share: 0.3"), file: "t.yaml")
        let plan = RunPlan(scenario: scenario)
        let later = plan.requests.filter { $0.previous != nil }
        #expect(later.count > 100)
        for request in later {
            let previous = plan.requests[request.previous!]
            #expect(previous.hasNextTurn && previous.conversation == request.conversation)
            #expect(previous.address == request.address && previous.model == request.model)
            #expect(request.turn == previous.turn + 1 && request.turn <= 6 && request.at - previous.at >= 3)
        }
        let http1 = Double(plan.requests.filter(\.http1).count) / Double(plan.requests.count)
        #expect(abs(http1 - 0.3) < 0.06)
    }
}

@Suite("The client's text check", .timeLimit(.minutes(1)))
struct ClientStreamTests {
    static func events(_ seed: Int, _ indices: Range<Int>) -> ByteBuffer {
        var text = ""
        for i in indices {
            let token = SyntheticText.token(seed: UInt64(seed), index: i)
            let json = String(decoding: try! JSONEncoder().encode(token), as: UTF8.self)
            text += #"data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":\#(json)}}]}"# + "\n\n"
        }
        return ByteBuffer(string: text)
    }

    @Test("a turn due before its previous answer waits for it, even while that one waits for its own")
    func chainedTurns() throws {
        func turn(_ n: Int) -> RunPlan.Request {
            var r = RunPlan.Request(
                id: "t\(n)", at: Double(n), measured: true, country: "DE", address: "91.0.0.1", model: "m",
                promptTokens: 8, maxTokens: 4, streaming: true, cancelAfter: nil, seed: n, conversation: 0)
            r.turn = n + 1
            r.previous = n > 0 ? n - 1 : nil
            r.hasNextTurn = n < 2
            return r
        }
        let store = ConversationStore()
        #expect(store.ready(turn(0), index: 0) == [])
        #expect(store.ready(turn(1), index: 1) == nil)
        #expect(store.ready(turn(2), index: 2) == nil)
        let second = try #require(store.answered(turn(0), index: 0, answer: "first answer"))
        #expect(second.index == 1 && second.history.count == 2 && second.history[1] == "first answer")
        let third = try #require(store.answered(turn(1), index: 1, answer: ""))
        #expect(third.index == 2 && third.history.count == 4)
    }

    @Test("DATA still arriving after a planned cancellation is not checked (it lost no token)")
    func cancelMidBatch() throws {
        // seed 7's lt-7-445: cancel after 3 tokens, with tokens 3… in the same read and more behind.
        var request = RunPlan.Request(
            id: "r", at: 0, measured: true, country: "DE", address: "91.0.0.1", model: "m", promptTokens: 8,
            maxTokens: 20, streaming: true, cancelAfter: 3, seed: 42, conversation: 0)
        request.hasNextTurn = false
        var final: RequestResult?
        let stream = ClientStream(
            request: request, result: RequestResult(index: 0, sentAt: 0, lagMicros: 0), start: .now()
        ) { result, _ in final = result }
        var response = HTTPResponse(status: .ok)
        response.headerFields[.contentType] = "text/event-stream"
        stream.streamDidReceiveResponse(response)
        stream.streamDidReceiveData(Self.events(42, 0..<6))
        stream.streamDidReceiveData(Self.events(42, 6..<9))
        stream.streamDidClose(error: .connectionClosed)
        let result = try #require(final)
        #expect(result.outcome == .cancelled && result.tokens == 3)
        #expect(result.textError == nil)
    }
}

@Suite("The harness's fleet", .timeLimit(.minutes(1)))
struct FleetStartTests {
    @Test(
        "a car is started once while it runs, and none after the fleet stopped (helper-103: overlapping churn events started a second copy that was never stopped)"
    )
    func oneCopyPerCar() async throws {
        let plan = RunPlan(scenario: try Scenario.parse(yaml: HarnessFeatureTests.scenario(), file: "t.yaml"))
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fleet-start-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var logger = Logger(label: "fleet-start-test")
        logger.logLevel = .critical
        // Port 9 (discard): nothing listens; the car dials and backs off, which is all this needs.
        let fleet = try Fleet(
            plan: Array(plan.cars.prefix(1)), tunnelPort: 9, secret: FleetFixture.testSecret, group: group, tls: nil,
            jobLogPath: dir.appendingPathComponent("jobs.ndjson").path, logger: logger, emulateLinks: false)
        #expect(fleet.start(0) != nil)
        #expect(fleet.start(0) == nil)
        fleet.remove(0, rejoinAfter: nil)
        #expect(fleet.start(0) != nil)
        await fleet.stopAll()
        #expect(fleet.start(0) == nil)
        try await group.shutdownGracefully()
    }
}
