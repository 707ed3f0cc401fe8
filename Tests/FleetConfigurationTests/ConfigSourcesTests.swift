import Configuration
import FleetAgent
import FleetConfiguration
import FleetGate
import FleetHTTP2
import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("Configuration layers, bad input and secrets", .timeLimit(.minutes(1)))
struct ConfigSourcesTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let secret = ["FLEETGATE_FLEET_SECRET": "0123456789abcdef-secret"]

    static func gateway(_ arguments: [String], file: String? = nil, environment: [String: String] = [:]) throws
        -> GatewayConfiguration
    {
        let stack = try ConfigStack(
            program: .fleetgate, schema: GatewayConfiguration.schema,
            arguments: (file.map { ["--config", $0] } ?? []) + arguments,
            environment: Self.secret.merging(environment) { _, new in new })
        return try stack.read { try GatewayConfiguration(config: $0) }
    }

    static func write(_ yaml: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fleetgate-\(UUID().uuidString).yaml")
            .path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("Command line beats environment beats file beats default")
    func precedence() throws {
        let file = try Self.write(
            "limits:\n  maxBodyBytes: 3000\n  maxInFlightRequests: 7\ndispatch:\n  maxAttempts: 2\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let env = ["FLEETGATE_LIMITS_MAX_BODY_BYTES": "2000", "FLEETGATE_DISPATCH_MAX_ATTEMPTS": "4"]
        let config = try Self.gateway(
            ["--limits-max-body-bytes", "1000", "--client-port=0"], file: file, environment: env)
        #expect(config.maxBodyBytes == 1000)  // flag
        #expect(config.maxAttempts == 4)  // environment over file
        #expect(config.maxInFlightRequests == 7)  // file
        #expect(config.clientPort == 0 && config.tunnelPort == 7443)  // flag, default
    }

    @Test(
        "A malformed value in any layer is an error naming it, never the default",
        arguments: [
            (["--limits-max-body-bytes", "80a"], [:], "limits.maxBodyBytes"),
            (
                [], ["FLEETGATE_LIMITS_MAX_BODY_BYTES": "80a"],
                "'80a': Config value for key 'FLEETGATE_LIMITS_MAX_BODY_BYTES'"
            ),
            (["--log-level", "inof"], [:], "'inof': must be one of"),
            (
                ["--log-level", "warning", "--logging-level=info"], [:],
                "given twice on the command line (--log-level and --logging-level)"
            ),
            (["--dispatch-policy", "fastest"], [:], "dispatch.policy"),
            (["--limits-client-http2-max-frame-size", "10"], [:], "limits.clientHTTP2.maxFrameSize"),
            (["--listeners-client-port", "70000"], [:], "listeners.client.port"),
            (["--geo-trusted-proxies", "10.0.0.0/99"], [:], "geo.trustedProxies"),
            (["--listeners-tls-private-key-file", "/k.pem"], [:], "listeners.tls.certificateChainFile"),
        ] as [([String], [String: String], String)])
    func malformed(arguments: [String], environment: [String: String], expected: String) throws {
        #expect { _ = try Self.gateway(arguments, environment: environment) } throws: {
            "\($0)".contains(expected)
        }
    }

    @Test(
        "Every invalid fixture is rejected at the right file:line:column",
        arguments: [
            "unknown-key", "wrong-type", "list-for-scalar", "secret-in-file", "nested-typo", "range", "missing-file",
            "missing-secret-file", "duplicate-key", "syntax",
        ])
    func invalidFixture(name: String) throws {
        let path = Self.fixtures.appendingPathComponent("\(name).invalid.yaml").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // The fixture's first line says what to expect: `# expect: LINE:COLUMN KEY`.
        let expectation = try #require(text.split(separator: "\n").first?.dropFirst("# expect: ".count))
        let result = ConfigCheck.run(
            file: path, program: .fleetgate, schema: GatewayConfiguration.schema, environment: [:]
        ) { try GatewayConfiguration(config: $0) }
        #expect(!result.ok)
        let parts = expectation.split(separator: " ")
        #expect(
            result.lines.contains { $0.hasPrefix("\(path):\(parts[0]): key '\(parts[1])'") }, "\(result.lines)")
    }

    /// helper-99: a rule across two keys stopped the check, and the file's other errors went unreported.
    @Test("A start names every error of a file at once, its own and the rules' (left open by session 38: two rounds)")
    func startReportsAll() throws {
        let file = try Self.write(
            "limits: {maxBodyBytes: lots, maxBodyBytez: 5}\nlogging: {level: loud}\ndispatch: {maxAttempts: -4}\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        do {
            _ = try ConfigStack.reportingAll(
                program: .fleetgate, schema: GatewayConfiguration.schema, arguments: ["--config", file],
                environment: Self.secret
            ) { try GatewayConfiguration(config: $0) }
            Issue.record("a bad file was accepted")
        } catch {
            let text = error.errors.map(\.description)
            for part in [
                "key 'limits.maxBodyBytes'", "key 'limits.maxBodyBytez'", "key 'logging.level': 'loud'",
                "key 'dispatch.maxAttempts': '-4'",
            ] {
                #expect(text.filter { $0.contains(part) }.count == 1, "\(part) in \(text)")
            }
            #expect(text.count == 4, "\(text)")
        }
        // A flag's error: the file is not read.
        #expect(throws: ConfigurationErrors.self) {
            try ConfigStack.reportingAll(
                program: .fleetgate, schema: GatewayConfiguration.schema,
                arguments: ["--config", file, "--no-such-flag", "1"], environment: Self.secret
            ) { try GatewayConfiguration(config: $0) }
        }
    }

    @Test("A rule across keys does not stop the check: every error of the file is reported in one pass")
    func crossKeyRuleThenMore() throws {
        let path = try Self.write(
            "tunnel:\n  auth: token\nlimits:\n  clientHTTP2: {outboundHighWatermark: 10, outboundLowWatermark: 100}\n"
                + "audit: {fraction: 3}\neventLoopThreads: -2\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = ConfigCheck.run(
            file: path, program: .fleetgate, schema: GatewayConfiguration.schema, environment: [:]
        ) { try GatewayConfiguration(config: $0) }
        #expect(!result.ok)
        for key in ["limits.clientHTTP2.outboundLowWatermark", "audit.fraction", "eventLoopThreads"] {
            #expect(result.lines.contains { $0.contains("key '\(key)'") }, "\(key): \(result.lines)")
        }
    }

    @Test("The example files pass config check, with the files they name in place")
    func examples() throws {
        let docs = Self.fixtures.appendingPathComponent("../../../docs/examples").standardized
        // The example names the tunnel's certificate, key and fleet CA under /etc/fleetgate; the check
        // loads every file named, so stand-ins take their place here (deploy/check.sh does the same): a
        // fleet CA and a server certificate it issued.
        let ca = try FleetPKI.makeCA(name: "check")
        let server = try FleetPKI(certificatePEM: ca.certificatePEM, privateKeyPEM: ca.privateKeyPEM)
            .issueServer(names: ["tunnel.example.com"])
        let standIns = try [
            "tunnel": server.certificatePEM, "tunnel-key": server.privateKeyPEM, "fleet-ca": ca.certificatePEM,
        ]
        .mapValues(Self.write)
        defer { for path in standIns.values { try? FileManager.default.removeItem(atPath: path) } }
        var yaml = try String(contentsOf: docs.appendingPathComponent("fleetgate.yaml"), encoding: .utf8)
        for (name, path) in standIns { yaml = yaml.replacingOccurrences(of: "/etc/fleetgate/\(name).pem", with: path) }
        // And the revocation list (empty, as the install steps create it) and the GeoIP database.
        let revocations = try Self.write("")
        defer { try? FileManager.default.removeItem(atPath: revocations) }
        yaml = yaml.replacingOccurrences(of: "/etc/fleetgate/revocations", with: revocations)
            .replacingOccurrences(of: "/var/lib/GeoIP/GeoLite2-Country.mmdb", with: "none")
        let pointed = try Self.write(yaml)
        defer { try? FileManager.default.removeItem(atPath: pointed) }
        let gateway = ConfigCheck.run(
            file: pointed, program: .fleetgate, schema: GatewayConfiguration.schema, environment: [:]
        ) { try GatewayConfiguration.checked(config: $0) }
        #expect(gateway.ok, "\(gateway.lines)")
        let agentYAML = try String(contentsOf: docs.appendingPathComponent("fleet-agent.yaml"), encoding: .utf8)
        let agentPointed = try Self.write(
            agentYAML.replacingOccurrences(
                of: #"/etc/fleet-agent/[a-z-]+\.pem"#, with: standIns["fleet-ca"]!, options: .regularExpression))
        defer { try? FileManager.default.removeItem(atPath: agentPointed) }
        let agent = ConfigCheck.run(
            file: agentPointed, program: .fleetAgent, schema: AgentProgramConfiguration.schema, environment: [:]
        ) { try AgentProgramConfiguration.checked(config: $0) }
        #expect(agent.ok, "\(agent.lines)")
    }

    @Test("config check refuses what serve refuses: certificate auth without a tunnel certificate, a short admin token")
    func checkAppliesServeRules() throws {
        let check = { (yaml: String, environment: [String: String]) -> ConfigCheck.Result in
            let path = try Self.write(yaml)
            defer { try? FileManager.default.removeItem(atPath: path) }
            return ConfigCheck.run(
                file: path, program: .fleetgate, schema: GatewayConfiguration.schema, environment: environment
            ) { try GatewayConfiguration.checked(config: $0) }
        }
        // tunnel.auth defaults to certificate: serve refused this file, config check passed it (helper-70).
        let noCertificate = try check("listeners:\n  tunnel:\n    port: 7443\n", [:])
        #expect(!noCertificate.ok)
        #expect(
            noCertificate.lines.contains { $0.contains("listeners.tunnel.certificateChainFile") },
            "\(noCertificate.lines)")
        #expect(try check("tunnel:\n  auth: token\n", [:]).ok)
        // A certificate that is not there: one error, at its line — not a second one blamed on an environment
        // variable the check itself set while looking further (helper-70).
        let unreadable = try check(
            "listeners:\n  tunnel:\n    certificateChainFile: /nonexistent/tunnel.pem\n    privateKeyFile: /nonexistent/key.pem\n",
            [:])
        #expect(unreadable.lines.contains { $0.contains("/nonexistent/tunnel.pem") }, "\(unreadable.lines)")
        #expect(!unreadable.lines.contains { $0.contains("environment variable") }, "\(unreadable.lines)")
        // helper-82: a certificate that is not one, and a key of another certificate, passed the check and
        // stopped `serve`. The check now loads the pair.
        let ca = try FleetPKI.makeCA(name: "check")
        let pki = try FleetPKI(certificatePEM: ca.certificatePEM, privateKeyPEM: ca.privateKeyPEM)
        let (one, other) = (try pki.issueServer(names: ["a.example"]), try pki.issueServer(names: ["b.example"]))
        let files = try [one.certificatePEM, one.privateKeyPEM, other.privateKeyPEM, "not a certificate"].map(
            Self.write)
        defer { for path in files { try? FileManager.default.removeItem(atPath: path) } }
        let tls = { (certificate: String, key: String) in
            try check(
                "tunnel:\n  auth: token\nlisteners:\n  tls:\n    certificateChainFile: \(certificate)\n    privateKeyFile: \(key)\n",
                [:])
        }
        #expect(try tls(files[0], files[1]).ok)
        let mismatched = try tls(files[0], files[2])
        #expect(
            !mismatched.ok && mismatched.lines.contains { $0.contains("listeners.tls.privateKeyFile") },
            "\(mismatched.lines)")
        let garbage = try tls(files[3], files[1])
        #expect(
            !garbage.ok && garbage.lines.contains { $0.contains("listeners.tls.certificateChainFile") },
            "\(garbage.lines)")
        let absent = try tls("/nonexistent/tls.pem", files[1])
        #expect(
            absent.lines.contains { $0.contains("/nonexistent/tls.pem") && $0.contains("cannot read the file") },
            "\(absent.lines)")

        let short = try Self.write("short")
        defer { try? FileManager.default.removeItem(atPath: short) }
        let shortToken = try check("tunnel:\n  auth: token\nadmin:\n  tokenFile: \(short)\n", [:])
        #expect(!shortToken.ok)
        #expect(
            shortToken.lines.contains { $0.contains("admin.tokenFile") && $0.contains("at least 16") },
            "\(shortToken.lines)")
        let missing = try check("tunnel:\n  auth: token\nadmin:\n  tokenFile: /nonexistent/admin-token\n", [:])
        #expect(missing.lines.contains { $0.contains("admin.tokenFile") && $0.contains("/nonexistent/admin-token") })
    }

    @Test("Two listeners on one port of one address are refused before anything binds (helper-73)")
    func portClash() throws {
        #expect { _ = try Self.gateway(["--client-port", "9091", "--admin-probes-host", "127.0.0.1"]) } throws: {
            "\($0)".contains("admin.probesPort") && "\($0)".contains("listeners.client.port")
        }
        #expect { _ = try Self.gateway(["--tunnel-port", "8080"]) } throws: {
            "\($0)".contains("listeners.tunnel.port")
        }
        // Distinct addresses may share a port; 0 is any free port.
        _ = try Self.gateway(["--admin-host", "127.0.0.2", "--admin-port", "8080"])
        _ = try Self.gateway(["--client-port", "0", "--tunnel-port", "0", "--admin-port", "0"])
    }

    @Test("Secrets are refused on the command line and never echoed in an error")
    func secretsStayOff() throws {
        for flag in ["--api-key", "--fleet-secret", "--auth-api-keys"] {
            #expect { _ = try Self.gateway([flag, "sk-very-secret"]) } throws: {
                "\($0)".contains("is a secret") && !"\($0)".contains("sk-very-secret")
            }
        }
        #expect {
            _ = try ConfigStack(
                program: .fleetAgent, schema: AgentProgramConfiguration.schema, arguments: ["--token", "fgv1.secret"],
                environment: [:])
        } throws: { "\($0)".contains("FLEET_AGENT_TOKEN") && !"\($0)".contains("fgv1.secret") }
        // A too-short secret: the error says why, not what.
        #expect { _ = try Self.gateway([], environment: ["FLEETGATE_FLEET_SECRET": "tiny-secret"]) } throws: {
            "\($0)".contains("fleetSecret") && !"\($0)".contains("tiny-secret")
        }
    }

    @Test("config check reports every error: the file's own, then each range and cross-key rule")
    func checkReportsAll() throws {
        let file = try Self.write(
            "limitz: 1\nlimits:\n  maxBodyBytes: lots\n  maxInFlightRequests: -5\ndispatch:\n  maxAttempts: 0\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = ConfigCheck.run(
            file: file, program: .fleetgate, schema: GatewayConfiguration.schema,
            environment: ["FLEETGATE_FLEET_SECRET": "short"]
        ) { try GatewayConfiguration(config: $0) }
        #expect(!result.ok)
        #expect(
            result.lines == [
                "\(file):1:1: key 'limitz': unknown key; did you mean 'limits'?",
                "\(file):3:17: key 'limits.maxBodyBytes': 'lots': must be an integer",
                "\(file):4:24: key 'limits.maxInFlightRequests': '-5': must be in 1…10000000",
                "\(file):6:16: key 'dispatch.maxAttempts': '0': must be in 1…10",
                "environment variable FLEETGATE_FLEET_SECRET: key 'fleetSecret': the fleet secret must be at least 16 bytes",
            ], "\(result.lines)")
    }

    @Test("A bad value is reported where it came from: the flag, the environment variable or the file line")
    func errorNamesItsLayer() throws {
        let file = try Self.write("dispatch:\n  capacityWaitSeconds: 3\n  maxAttempts: 0\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let variable = "FLEETGATE_DISPATCH_CAPACITY_WAIT_SECONDS"
        // The file's line for the key holds a good value: it must not be blamed for the variable's.
        #expect {
            _ = try Self.gateway(["--dispatch-max-attempts", "3"], file: file, environment: [variable: "700"])
        } throws: {
            "\($0)".hasPrefix("environment variable \(variable): key 'dispatch.capacityWaitSeconds'")
                && !"\($0)".contains(file)
        }
        #expect {
            _ = try Self.gateway(
                ["--dispatch-max-attempts", "3", "--dispatch-capacity-wait-seconds=900"], file: file,
                environment: [variable: "700"])
        } throws: {
            "\($0)".hasPrefix(
                "flag --dispatch-capacity-wait-seconds: key 'dispatch.capacityWaitSeconds': '900': must be in 0…600")
        }
        #expect { _ = try Self.gateway([], file: file) } throws: {
            "\($0)".hasPrefix("\(file):3:16: key 'dispatch.maxAttempts': '0'")
        }
        // Given as an alias, the flag is named with its aliases (helper-121: `--etcd` was not).
        #expect {
            _ = try Self.gateway(["--dispatch-max-attempts", "3", "--etcd", "127.0.0.1:2379"], file: file)
        } throws: {
            "\($0)".hasPrefix("flag --cluster-etcd-endpoints (or --etcd): key 'cluster.etcdEndpoints'")
        }
        let result = ConfigCheck.run(
            file: file, program: .fleetgate, schema: GatewayConfiguration.schema,
            environment: Self.secret.merging([variable: "-1"]) { a, _ in a }
        ) { try GatewayConfiguration(config: $0) }
        #expect(
            result.lines == [
                "\(file):3:16: key 'dispatch.maxAttempts': '0': must be in 1…10",
                "environment variable \(variable): key 'dispatch.capacityWaitSeconds': '-1': must be in 0…600",
            ], "\(result.lines)")
    }

    @Test("By default a car leaves a stalled stream to the gateway and takes every cancel it forwards")
    func tunnelDefaultsDeferToTheGateway() throws {
        let gateway = GatewayConfiguration.Limits.clientHTTP2Defaults
        for agent in [AgentProgramConfiguration.defaults.tunnelHTTP2, AgentConfiguration.tunnelHTTP2Defaults] {
            // The gateway ends a non-reading client's stream (499) before the car's tunnel resets it.
            let (car, client) = (try #require(agent.stallTimeout), try #require(gateway.stallTimeout))
            #expect(car.nanoseconds >= client.nanoseconds * 3 / 2)
            // One tunnel carries the cancels of many client connections, each allowed the client limit.
            #expect(agent.maxResetsPerSecond >= 1000 * gateway.maxResetsPerSecond)
        }
    }

    @Test("A YAML error gives its line and column and never echoes the file")
    func yamlErrorIsShort() throws {
        // 20,000 lines of comment, then a key written twice: Yams's own error carried the whole text.
        let padding = String(repeating: "# padding line of a large file\n", count: 20_000)
        let file = try Self.write(padding + "limits:\n  maxBodyBytes: 3000\n\n  # again\n  maxBodyBytes: 4000\n")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = ConfigCheck.run(
            file: file, program: .fleetgate, schema: GatewayConfiguration.schema, environment: [:]
        ) { try GatewayConfiguration(config: $0) }
        #expect(!result.ok)
        #expect(result.lines.count == 1 && result.lines[0].count < 400, "\(result.lines.map(\.count))")
        #expect(
            result.lines[0].hasPrefix("\(file):20005:3: key '-': not valid YAML: key 'maxBodyBytes' appears twice")
                && result.lines[0].hasSuffix("first at line 20002"), "\(result.lines)")
    }

    @Test("A key written twice in a CRLF file is found at its second use too")
    func yamlErrorCRLF() {
        #expect {
            _ = try ConfigFile.parse(
                yaml: "limits:\r\n  maxBodyBytes: 3000\r\n  maxBodyBytes: 4000\r\n", file: "crlf.yaml",
                schema: GatewayConfiguration.schema, environmentPrefix: "FLEETGATE")
        } throws: { "\($0)".hasPrefix("crlf.yaml:3:3: key '-': not valid YAML: key 'maxBodyBytes' appears twice") }
    }

    @Test("A misspelt environment variable is a warning naming the closest; Kubernetes service links are not")
    func unknownEnvironment() throws {
        let environment = [
            "FLEETGATE_LIMITS_MAX_BODY_BYTE": "4096",  // a typo
            "FLEETGATE_LIMITS_MAX_BODY_BYTES": "4096",  // a key
            "FLEETGATE_CLIENT_SERVICE_HOST": "10.0.0.7", "FLEETGATE_CLIENT_SERVICE_PORT_HTTPS": "443",
            "FLEETGATE_CLIENT_PORT": "tcp://10.0.0.7:443", "FLEETGATE_CLIENT_PORT_443_TCP_ADDR": "10.0.0.7",
            "FLEETGATE_PYTHON": "/usr/bin/python3", "FLEETGATE_CACHE": "/tmp",
            "FLEETGATE_LISTENERS_CLIENT_PORT_": "1",  // not a service link: no `://`
        ]
        let stack = try ConfigStack(
            program: .fleetgate, schema: GatewayConfiguration.schema, arguments: [], environment: environment)
        let warnings = stack.unknownEnvironmentWarnings()
        #expect(warnings.count == 2, "\(warnings)")
        #expect(
            warnings.contains {
                $0.contains("FLEETGATE_LIMITS_MAX_BODY_BYTE is not a setting")
                    && $0.contains("did you mean FLEETGATE_LIMITS_MAX_BODY_BYTES?")
            })
        #expect(warnings.contains { $0.contains("FLEETGATE_LISTENERS_CLIENT_PORT_ is not a setting") })
    }

    @Test("Secrets come from files; a missing secret file names the key and the path")
    func secretFiles() throws {
        let keys = try Self.write("# keys\nsk-one\n\nsk-two\n")
        let secret = try Self.write("0123456789abcdef-from-file\n")
        defer {
            try? FileManager.default.removeItem(atPath: keys)
            try? FileManager.default.removeItem(atPath: secret)
        }
        let stack = try ConfigStack(
            program: .fleetgate, schema: GatewayConfiguration.schema,
            arguments: ["--fleet-secret-file", secret, "--api-key-file", keys], environment: [:])
        let config = try stack.read { try GatewayConfiguration(config: $0) }
        #expect(config.fleetSecret == "0123456789abcdef-from-file")
        #expect(config.apiKeys == ["sk-one", "sk-two"])
        #expect {
            _ = try Self.gateway(["--auth-api-keys-file", "/nonexistent/keys"])
        } throws: { "\($0)".contains("auth.apiKeysFile") && "\($0)".contains("/nonexistent/keys") }
    }

    @Test("Agent: an unknown hardware class or log level is an error, and aliases reach their keys")
    func agent() throws {
        func agent(_ arguments: [String]) throws -> AgentProgramConfiguration {
            try ConfigStack(
                program: .fleetAgent, schema: AgentProgramConfiguration.schema, arguments: arguments, environment: [:]
            ).read { try AgentProgramConfiguration(config: $0) }
        }
        #expect { _ = try agent(["--hardware", "hw9"]) } throws: { "\($0)".contains("engine.hardware") }
        #expect { _ = try agent(["--log-level", "verbose"]) } throws: { "\($0)".contains("logging.level") }
        #expect { _ = try agent(["--hardwre", "hw3"]) } throws: { "\($0)".contains("did you mean --hardware") }
        // Its example flag is one of its own (helper-130: a gateway key).
        #expect { _ = try agent(["--zzz", "1"]) } throws: { "\($0)".contains("`--policy-min-charge-percent 50`") }
        let config = try agent(["--hardware", "ai5", "--no-plugged", "--gateway", "gw:7000", "--slots", "3"])
        #expect(config.engine.hardware == .ai5 && !config.state.pluggedIn && config.gateway.port == 7000)
        #expect(config.engine.slots == 3)
        // The hello's context window: the profile's, or --context-tokens.
        #expect(config.engine.makeSyntheticEngine().models.map(\.contextTokens) == [32_768])
        let small = try agent(["--hardware", "ai5", "--context-tokens", "4096"])
        #expect(small.engine.makeSyntheticEngine().models.map(\.contextTokens) == [4_096])
        #expect { _ = try agent(["--context-tokens", "-1"]) } throws: { "\($0)".contains("engine.contextTokens") }
        // openai-local: the configured window, else --cache-tokens when a hello may carry it (helper-124).
        #expect(try agent(["--cache-tokens", "2048"]).engine.runtimeContextTokens == 2_048)
        #expect(try agent(["--cache-tokens", "50000000"]).engine.runtimeContextTokens == nil)
        #expect(try agent(["--cache-tokens", "2048", "--context-tokens", "4096"]).engine.runtimeContextTokens == 4_096)
        // A runtime URL that can never be dialled is a configuration error naming the flag, not a retry for
        // ever (helper-130).
        #expect {
            _ = try agent(["--engine", "openai-local", "--upstream", "https://127.0.0.1:8080/v1"])
        } throws: { "\($0)".contains("--upstream") && "\($0)".contains("must be http://") }
        #expect(
            try agent(["--engine", "openai-local", "--upstream", "http://127.0.0.1:8080/v1"]).engine.kind
                == "openai-local")
    }
}
