import Configuration
import FleetAgent
import FleetConfiguration
import FleetGate
import FleetHTTP2
import FleetProtocol
import Foundation
import Synchronization
import Testing

/// Records every key a reader is asked for.
final class KeyRecorder: AccessReporter, Sendable {
    private let keys = Mutex<Set<String>>([])
    func report(_ event: AccessEvent) {
        _ = self.keys.withLock { $0.insert(event.metadata.key.components.joined(separator: ".")) }
    }
    var read: Set<String> { self.keys.withLock { $0 } }
}

@Suite("Every configuration key is documented and read", .timeLimit(.minutes(1)))
struct ConfigKeysTests {
    static let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../docs/configuration.md").standardized

    /// The keys of the table between `<!-- NAME keys` and `<!-- end NAME keys -->`.
    static func documentedKeys(_ name: String) throws -> (keys: Set<String>, table: String) {
        let text = try String(contentsOf: Self.docs, encoding: .utf8)
        let start = try #require(text.range(of: "<!-- \(name) keys"))
        let end = try #require(text.range(of: "<!-- end \(name) keys -->"))
        let section = text[start.upperBound..<end.lowerBound]
        let table = section.split(separator: "\n").filter { $0.hasPrefix("|") }.joined(separator: "\n")
        let keys = section.split(separator: "\n").compactMap { line -> String? in
            guard line.hasPrefix("| `") else { return nil }
            return line.dropFirst(3).split(separator: "`").first.map(String.init)
        }
        return (Set(keys), table)
    }

    /// The keys `read` asks for, with every default and the required secret set.
    static func readKeys(
        _ program: ConfigStack.Program, _ schema: ConfigSchema, environment: [String: String],
        _ read: (ConfigReader) throws -> Void
    ) throws -> Set<String> {
        let stack = try ConfigStack(program: program, schema: schema, arguments: [], environment: environment)
        let recorder = KeyRecorder()
        try read(stack.reader(accessReporter: recorder))
        return recorder.read
    }

    @Test("fleetgate: docs list exactly the keys GatewayConfiguration(config:) reads, with the code's defaults")
    func gateway() throws {
        let read = try Self.readKeys(
            .fleetgate, GatewayConfiguration.schema, environment: ["FLEETGATE_FLEET_SECRET": "0123456789abcdef"]
        ) { _ = try GatewayConfiguration(config: $0) }
        let documented = try Self.documentedKeys("fleetgate")
        #expect(read.subtracting(documented.keys).isEmpty, "read but not documented")
        #expect(documented.keys.subtracting(read).isEmpty, "documented but not read")
        #expect(Set(GatewayConfiguration.schema.keys.map(\.key)) == read)
        #expect(documented.table == GatewayConfiguration.schema.markdownTable(environmentPrefix: "FLEETGATE"))
    }

    @Test("fleet-agent: docs list exactly the keys AgentProgramConfiguration(config:) reads, with the code's defaults")
    func agent() throws {
        let read = try Self.readKeys(.fleetAgent, AgentProgramConfiguration.schema, environment: [:]) {
            _ = try AgentProgramConfiguration(config: $0)
        }
        let documented = try Self.documentedKeys("fleet-agent")
        #expect(read.subtracting(documented.keys).isEmpty, "read but not documented")
        #expect(documented.keys.subtracting(read).isEmpty, "documented but not read")
        #expect(Set(AgentProgramConfiguration.schema.keys.map(\.key)) == read)
        #expect(documented.table == AgentProgramConfiguration.schema.markdownTable(environmentPrefix: "FLEET_AGENT"))
    }

    @Test("Every command-line alias is listed after its program's table (secrets' aliases only refuse)")
    func aliases() throws {
        let text = try String(contentsOf: Self.docs, encoding: .utf8)
        for (name, schema) in [
            ("fleetgate", GatewayConfiguration.schema), ("fleet-agent", AgentProgramConfiguration.schema),
        ] {
            let end = try #require(text.range(of: "<!-- end \(name) keys -->"))
            let list = try #require(text[end.upperBound...].range(of: "Command-line aliases:"))
            let paragraph = String(text[list.upperBound...]).components(separatedBy: "\n\n")[0]
            let documented = Set(paragraph.split(separator: "`").filter { $0.hasPrefix("--") }.map(String.init))
            let aliases = Set(
                schema.keys.filter { !$0.isSecret }.flatMap(\.aliases).map {
                    String($0.split(separator: "=", maxSplits: 1)[0])
                })
            #expect(aliases.subtracting(documented).isEmpty, "\(name): not documented")
            #expect(documented.subtracting(aliases).isEmpty, "\(name): documented but not an alias")
        }
    }

    @Test("The defaults read through the stack are the types' own defaults")
    func defaults() throws {
        let stack = try ConfigStack(
            program: .fleetgate, schema: GatewayConfiguration.schema, arguments: [],
            environment: ["FLEETGATE_FLEET_SECRET": "0123456789abcdef"])
        let read = try stack.read { try GatewayConfiguration(config: $0) }
        let code = GatewayConfiguration(fleetSecret: "0123456789abcdef")
        #expect(read.listeners == code.listeners && read.admin == code.admin && read.dispatch == code.dispatch)
        #expect(read.tunnel == code.tunnel && read.logging == code.logging)
        #expect(read.maxBodyBytes == code.maxBodyBytes && read.bodyTimeout == code.bodyTimeout)
        #expect(read.tunnelHTTP2.maxConcurrentStreams == 64 && read.tunnelHTTP2.idleTimeout == nil)
        #expect(read.clientHTTP2.idleTimeout == code.clientHTTP2.idleTimeout)
    }
}
