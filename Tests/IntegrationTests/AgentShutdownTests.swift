import FleetAgent
import FleetConfiguration
import FleetHTTP2
import FleetTesting
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Testing

@Suite("fleet-agent serve drains like the gateway", .timeLimit(.minutes(1)))
struct AgentShutdownTests {
    @Test("On graceful shutdown the local server refuses new connections and finishes the running stream")
    func serveDrains() async throws {
        let configuration = try ConfigStack(
            program: .fleetAgent, schema: AgentProgramConfiguration.schema,
            arguments: ["--listen", "127.0.0.1:0", "--hardware", "ai5", "--slowdown", "2"], environment: [:]
        ).read { try AgentProgramConfiguration(config: $0) }
        var logger = Logger(label: "agent-test")
        logger.logLevel = .critical
        let agent = try await Agent(configuration: configuration, role: .central, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: agent)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let port = try await #require(agent.server).boundAddress.get().port!
            let client = try await RecordingClient.connect(port: port)
            defer { client.close() }
            // ai5 at half speed: 25 tokens/s, so 30 tokens take over a second.
            let stream = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 30))
            try await waitUntil("streaming") { stream.receivedBytes > 300 }
            await group.triggerGracefulShutdown()
            let result = await stream.collect()
            #expect(result.response?.status == .ok)
            #expect(try ssePayloads(result.body).last == "[DONE]")
            await #expect(throws: (any Error).self) { _ = try await RecordingClient.connect(port: port) }
            try await tasks.waitForAll()  // the agent's run() returned
        }
    }

    @Test("A listener that took any free port because its own was taken stops on graceful shutdown (helper-100)")
    func fallbackListenerStops() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        // Takes a port, which the listener below is configured with.
        let holder = try await HTTPServer.bind(host: "127.0.0.1", port: 0, group: group, responder: TestResponder())
        defer { holder.close(promise: nil) }
        let taken = try #require(holder.localAddress?.port)
        var logger = Logger(label: "fallback-test")
        logger.logLevel = .critical
        let server = HTTPServer(
            name: "client", host: "127.0.0.1", port: taken, group: group, logger: logger, fallbackToAnyPort: true,
            configurator: .http(responder: TestResponder()))
        let services = ServiceGroup(configuration: .init(services: [.init(service: server)], logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }
            let port = try #require(try await server.boundAddress.get().port)
            #expect(port != taken)
            await services.triggerGracefulShutdown()
            try await tasks.waitForAll()  // run() returned: before the fix it waited for ever
            await #expect(throws: (any Error).self) { _ = try await RecordingClient.connect(port: port) }
        }
    }
}
