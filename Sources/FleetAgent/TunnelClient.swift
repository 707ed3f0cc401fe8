import FleetConfiguration
public import FleetHTTP2
public import FleetProtocol
import Foundation
import HTTPTypes
public import Logging
public import NIOCore
import NIOSSL
public import ServiceLifecycle
import Synchronization

/// The car's side of the reverse tunnel: dials the gateway, then serves HTTP/2 on that connection.
///
/// Responsibilities:
/// 1. dial out (cars sit behind NAT) and install ``HTTP2ConnectionHandler`` in the *server* role;
/// 2. answer the gateway's status stream with the hello and every state change (``AgentResponder``);
/// 3. reconnect with jittered exponential ``Backoff`` whenever the connection is lost — issue #21:
///    to a replica none of the car's other tunnels holds, as the shared ``ReplicaDirectory``
///    chooses (configured addresses, every record of a host name, what gateways tell the car);
///    the primary flag of the hello moves to a surviving tunnel when the primary one goes; a
///    tunnel that turns out to reach the same replica as another is closed (its jobs finish);
/// 4. on graceful shutdown, drain: announce it on the status stream, GOAWAY, let jobs finish;
/// 5. issue #20: read the TLS files (the CA that signs the gateway, the vehicle certificate and
///    key) afresh for every tunnel, and while connected check every ``filePollInterval`` whether
///    they changed: a renewed certificate or a rotated CA moves the car to a new tunnel (GOAWAY,
///    jobs finish, dial again) before the old certificate runs out.
public final class TunnelClient: Service, Sendable {
    let configuration: AgentConfiguration
    /// The responder serving jobs on the tunnel (also usable on a local listener).
    public let responder: AgentResponder
    let group: any EventLoopGroup
    let logger: Logger
    let sleep: @Sendable (TimeAmount) async throws -> Void
    /// The replicas this car's tunnels share, and this tunnel's slot among them (issue #21).
    package let directory: ReplicaDirectory
    package let slot: Int
    private let current = Mutex<HTTP2ConnectionHandle?>(nil)
    private let connects = Atomic<Int>(0)
    /// Set by a `token-expired` or `quarantine` control message: the car stops dialling (after
    /// `token-expired`, a car with a certificate dials again once its certificate file changes).
    private let refused = Atomic<Bool>(false)
    private let quarantined = Atomic<Bool>(false)
    /// Why the current tunnel is going: its first cause, which "Tunnel closed" says (helper-137: it said none).
    private let closeCause = Mutex<String?>(nil)
    /// How often the TLS files are checked for a renewal while connected.
    var filePollInterval: TimeAmount { self.configuration.tls?.pollInterval ?? .seconds(5) }

    /// Creates the tunnel client.
    /// - Parameters:
    ///   - sleep: waits between attempts; tests inject a clock here.
    ///   - directory: the replicas shared with the car's other tunnels and this tunnel's `slot`
    ///     (issue #21); nil: this tunnel alone, dialling ``AgentConfiguration/gatewayHost``.
    public convenience init(
        configuration: AgentConfiguration, engine: any InferenceEngine, state: AgentState, group: any EventLoopGroup,
        logger: Logger, jobLog: JobLog? = nil, sleep: (@Sendable (TimeAmount) async throws -> Void)? = nil
    ) {
        self.init(
            configuration: configuration, engine: engine, state: state, group: group, logger: logger, jobLog: jobLog,
            sleep: sleep, directory: nil, slot: 0)
    }

    package init(
        configuration: AgentConfiguration, engine: any InferenceEngine, state: AgentState, group: any EventLoopGroup,
        logger: Logger, jobLog: JobLog?, sleep: (@Sendable (TimeAmount) async throws -> Void)?,
        directory: ReplicaDirectory?, slot: Int
    ) {
        let directory =
            directory
            ?? ReplicaDirectory(
                configuration: .init(
                    tunnels: 1,
                    backoff: Backoff(initial: configuration.initialBackoff, maximum: configuration.maxBackoff)),
                configured: [.init(host: configuration.gatewayHost, port: configuration.gatewayPort)])
        self.directory = directory
        self.slot = slot
        self.configuration = configuration
        self.group = group
        self.logger = logger
        self.sleep = sleep ?? { try await Task.sleep(nanoseconds: UInt64(max(0, $0.nanoseconds))) }
        let config = configuration
        self.responder = AgentResponder(
            engine: engine, state: state,
            hello: {
                var hello = StatusMessage.hello(
                    vehicleID: config.vehicleID, credential: config.credential, hardware: config.hardware,
                    models: engine.models, region: config.region, slots: engine.slots, policy: config.policy,
                    state: state.vehicle)
                hello.continuation = engine.continuation
                hello.cache = engine.promptCache
                // Issue #21: one tunnel of the car is primary; the others say so.
                let (primary, gateway) = directory.withChoice { ($0.claimPrimary(slot: slot), $0.target(of: slot)) }
                if !primary { hello.primary = false }
                // Where its other tunnels are; and they tell their replicas this one is here (issue #21).
                hello.elsewhere = directory.helloElsewhere(slot: slot)
                directory.tunnelsChanged()
                // Said here, not at the TCP connect: a load balancer accepts while the gateway behind it is
                // down, and a refused TLS handshake comes after the connect (helper-104).
                logger.info(
                    "Tunnel connected: the gateway opened the status stream; hello sent",
                    metadata: [
                        "fleet.vehicle.id": "\(config.vehicleID)", "fleet.gateway": "\(gateway.map { "\($0)" } ?? "-")",
                    ])
                return hello
            },
            jobLog: jobLog, logger: logger)
        let notices = self.responder.notices
        directory.onPromotion(slot: slot) {
            // The primary tunnel went: this one is the car's primary now (issue #21).
            var message = StatusMessage.state(state.vehicle)
            message.primary = true
            notices.send(message)
        }
        directory.onElsewhereChange(slot: slot) { elsewhere in
            // Another tunnel of the car came or went (issue #21): this replica learns where they are.
            var message = StatusMessage.state(state.vehicle)
            message.elsewhere = elsewhere
            return notices.send(message)
        }
        // What changed while this tunnel's status stream was not open yet (its hello being written).
        notices.onAttach { directory.tunnelsChanged() }
        self.responder.control.onMessage { [weak self] message in
            let addresses = (message.to ?? []).prefix(32).compactMap(ReplicaChoice.Endpoint.init)
            switch message.type {
            case .reconnect:
                // The gateway drains: it sends no new jobs and closes the tunnel once ours finish;
                // the dial loop then connects again, to another replica while one is known.
                logger.info("Gateway asked to reconnect", metadata: ["fleet.reason": "\(message.reason ?? "-")"])
                self?.closing("the gateway asked the car to reconnect (\(message.reason ?? "no reason given"))")
                directory.withChoice {
                    $0.draining(
                        slot: slot, suggested: addresses, now: directory.now, rebalance: message.rebalance == true)
                }
            case .replicas:
                directory.learned(addresses, from: message.from.flatMap(ReplicaChoice.Endpoint.init), slot: slot)
            case .tokenExpired, .quarantine:
                logger.error(
                    "Gateway refuses this car; not dialling again",
                    metadata: ["fleet.control": "\(message.type.rawValue)", "fleet.reason": "\(message.reason ?? "-")"])
                self?.refused.store(true, ordering: .relaxed)
                self?.closing("the gateway refuses this car (\(message.type.rawValue): \(message.reason ?? "-"))")
                if message.type == .quarantine { self?.quarantined.store(true, ordering: .relaxed) }
            }
        }
    }

    /// Whether the gateway refused this car for good (quarantine, revocation, an expired token): the
    /// tunnel does not dial again.
    public var refusedByGateway: Bool { self.refused.load(ordering: .relaxed) }

    /// How many times a tunnel was established.
    public var connectionCount: Int { self.connects.load(ordering: .relaxed) }

    /// The replica this tunnel is connected to now, if any (issue #21).
    package var gateway: ReplicaChoice.Endpoint? { self.directory.withChoice { $0.endpoint(of: self.slot) } }

    /// Whether a tunnel is up now.
    public var isConnected: Bool { self.current.withLock { $0 != nil } }

    /// The current tunnel's channel, if connected (the load harness freezes it to emulate a stopped process).
    public var channel: (any Channel)? { self.current.withLock { $0?.channel } }

    public func run() async throws {
        let tls = self.configuration.tls
        // A broken file fails the start, not every dial; the context made for the check serves the
        // first dial (a harness starting thousands of cars would otherwise build two contexts each).
        var prepared = try tls.map { (stamp: Self.stamp($0.files), context: try Self.makeContext($0)) }
        let directory = self.directory, slot = self.slot
        var idle = false
        // Dial failures in a row: the first and every power of two are warnings (an unreachable gateway,
        // a refused certificate), the rest debug — a car offline for a day logs ~17 lines, not 17,000.
        var failuresInARow = 0
        var dialled: [String]?  // the last dial's file stamps: a refused car waits for a change from these
        func failed(_ message: Logger.Message, error: String, _ metadata: Logger.Metadata) {
            failuresInARow += 1
            var metadata = metadata
            metadata["error.message"] = "\(error.prefix(300))"
            metadata["fleet.dial.failures"] = "\(failuresInARow)"
            let level: Logger.Level = failuresInARow & (failuresInARow - 1) == 0 ? .warning : .debug
            self.logger.log(level: level, message, metadata: metadata)
        }
        try await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                if self.refused.load(ordering: .relaxed) {
                    // A quarantined car stays down; an expired certificate waits for its renewal.
                    guard !self.quarantined.load(ordering: .relaxed), let tls, tls.certificateFile != nil else { break }
                    guard await self.renewal(of: tls.files, from: dialled ?? Self.stamp(tls.files)) else { return }
                    self.refused.store(false, ordering: .relaxed)
                }
                // Which replica (issue #21): after this slot's backoff, host names resolved afresh
                // (every 30 s at most while nothing is there to dial), one no other tunnel holds.
                let delay = directory.withChoice { $0.slotDelay(slot: slot, now: directory.now) }
                if delay > 0 {
                    do { try await self.backoff(.nanoseconds(Int64(delay * 1e9))) } catch { break }
                }
                await directory.refresh(maxAge: idle ? 30 : 0)
                let decision = directory.withChoice {
                    $0.next(slot: slot, now: directory.now, random: Double.random(in: 0..<1))
                }
                guard case .dial(let endpoint) = decision else {
                    idle = true
                    if case .wait(let seconds) = decision {
                        do { try await self.backoff(.nanoseconds(Int64(min(seconds, 1) * 1e9))) } catch { break }
                    }
                    continue
                }
                idle = false
                var metadata: Logger.Metadata = [
                    "fleet.vehicle.id": "\(self.configuration.vehicleID)", "fleet.gateway": "\(endpoint)",
                ]
                do {
                    let stamp = prepared?.stamp ?? Self.stamp(tls?.files ?? [])
                    dialled = stamp
                    let tlsContext = try prepared?.context ?? tls.map(Self.makeContext)
                    prepared = nil
                    // Verify the name this address was resolved from (gateway.addresses may name other hosts).
                    let (retireAsked, retireAsk) = AsyncStream<Bool>.makeStream()  // true: with an error
                    // A GOAWAY from the gateway retires the tunnel: the gateway replaced it (the same
                    // car's newer tunnel reached it: only the gateway knows which hello it read last,
                    // so the car never closes a second tunnel to one replica itself) or is leaving;
                    // its jobs finish, then the slot dials again.
                    self.closeCause.withLock { $0 = nil }
                    let goAway = GoAwayWatcher(logger: self.logger, metadata: metadata, cause: { self.closing($0) }) {
                        retireAsk.yield($0)
                    }
                    let handle = try await HTTP2Client.connect(
                        host: endpoint.host, port: endpoint.port, group: self.group,
                        role: .server(self.responder), configuration: self.configuration.tunnelHTTP2, tls: tlsContext,
                        serverHostname: tls?.serverHostname ?? directory.serverHostname(for: endpoint),
                        delegate: goAway, socketHandlers: self.configuration.socketHandlers)
                    self.current.withLock { $0 = handle }
                    directory.withChoice { $0.connected(slot: slot, now: directory.now) }
                    self.connects.add(1, ordering: .relaxed)
                    self.logger.debug(
                        "Tunnel dialled; waiting for the gateway to open the status stream", metadata: metadata)
                    await withTaskCancellationHandler {
                        await withTaskGroup(of: Void.self) { watch in
                            if let files = tls?.files, !files.isEmpty {
                                watch.addTask { await self.moveOnRenewal(handle, files: files, stamp: stamp) }
                            }
                            watch.addTask {
                                for await refused in retireAsked {
                                    // A refusal was logged with its reason; this line would misname it (helper-101).
                                    if !refused {
                                        self.logger.info(
                                            "Tunnel retired (the gateway's GOAWAY: a newer tunnel of this car replaced it, the gateway moved it to another replica, or the gateway leaves); closing it"
                                        )
                                    }
                                    return await self.retire(handle)
                                }
                            }
                            try? await handle.channel.closeFuture.get()
                            watch.cancelAll()
                        }
                        withExtendedLifetime(goAway) {}  // the handler holds its delegate weakly
                    } onCancel: {
                        self.cut("the agent stopped (its task was cancelled)")
                        handle.channel.close(promise: nil)
                    }
                    retireAsk.finish()
                    self.current.withLock { $0 = nil }
                    let joined = directory.withChoice { $0.helloWritten(slot: slot) }
                    directory.lost(slot: slot, random: Double.random(in: 0..<1))
                    if joined {
                        failuresInARow = 0
                        // Why, when the connection knew (helper-104: a dead link's close said nothing).
                        if let error = goAway.firstError { metadata["error.message"] = "\(error.prefix(300))" }
                        let terminated = try? await handle.eventLoop.submit { handle.onLoop.terminationReason }.get()
                        metadata["fleet.reason"] = "\(self.closeReason(terminated: terminated))"
                        self.logger.info("Tunnel closed", metadata: metadata)
                    } else {
                        // helper-73: a refused TLS handshake (a certificate from another CA, a name that does
                        // not match, a token car at a certificate gateway) logged "Tunnel connected" and
                        // "Tunnel closed" at info, forever, and never why.
                        failed(
                            "Tunnel closed before the gateway took the car (a TLS handshake refused, or not a FleetGate tunnel port)",
                            error: goAway.firstError ?? "closed without an error", metadata)
                    }
                } catch {
                    directory.withChoice {
                        $0.dialFailed(slot: slot, now: directory.now, random: Double.random(in: 0..<1))
                    }
                    metadata["error.type"] = "\(type(of: error))"
                    // helper-70: a gateway that could not be reached was said only at debug level.
                    failed("Tunnel dial failed", error: String(describing: error), metadata)
                }
                if Task.isShuttingDownGracefully { break }
            }
        } onGracefulShutdown: {
            self.drain()
        }
    }

    /// Waits `delay` between dials, cut short by a graceful shutdown (SIGTERM): a car with nothing to
    /// drain then stops at once (helper-99: one waiting to redial a gateway that was down took up to
    /// `reconnect.maxBackoffSeconds` to stop, and a systemd stop waited with it).
    private func backoff(_ delay: TimeAmount) async throws {
        let sleep = self.sleep
        try await cancelWhenGracefulShutdown { try await sleep(delay) }
    }

    static func makeContext(_ tls: AgentConfiguration.TunnelTLS) throws -> NIOSSLContext {
        try HTTP2Client.makeTLSContext(
            caFile: tls.caFile, certificateFile: tls.certificateFile, privateKeyFile: tls.privateKeyFile)
    }

    /// The files' content stamps (``FileStamp/of(_:)``): a renewal that kept the old mtime (`cp -p`) counts.
    static func stamp(_ files: [String]) -> [String] {
        files.map(FileStamp.of)
    }

    /// Waits until the TLS files differ from `stamp`, all there (a file gone serves no dial) and the same on
    /// two polls in a row (not one caught mid-`cp`); false when cancelled or shutting down first.
    private func renewal(of files: [String], from stamp: [String]) async -> Bool {
        var previous = stamp
        while !Task.isCancelled {
            do { try await self.backoff(self.filePollInterval) } catch { return false }
            let current = Self.stamp(files)
            if current != stamp && current == previous && !current.contains(FileStamp.missing) { return true }
            previous = current
        }
        return false
    }

    /// While the tunnel is up: when its TLS files are renewed (``renewal(of:from:)``), ``retire(_:)``
    /// it, and the dial loop connects again with the new files.
    private func moveOnRenewal(_ handle: HTTP2ConnectionHandle, files: [String], stamp: [String]) async {
        guard await self.renewal(of: files, from: stamp) else { return }
        self.logger.info("TLS files changed; moving to a new tunnel")
        self.closing("the TLS files changed: moving to a new tunnel")
        await self.retire(handle)
    }

    /// GOAWAY (no new jobs), let the running jobs finish (at most
    /// ``AgentConfiguration/drainSeconds``), close. The gateway's status stream never ends by
    /// itself, so the close is ours once only it is left.
    private func retire(_ handle: HTTP2ConnectionHandle) async {
        handle.execute { $0.beginGracefulShutdown() }
        let deadline = NIODeadline.now() + .seconds(Int64(self.configuration.drainSeconds))
        while !Task.isCancelled && NIODeadline.now() < deadline {
            let streams = try? await handle.eventLoop.submit { handle.onLoop.openStreamCount }.get()
            // The jobs: the open streams but the status stream, if it still is (a gateway shutting the
            // tunnel down resets it first; counting it then closed the tunnel on its last job).
            let statusStream = self.responder.notices.isStreamOpen ? 1 : 0
            if (streams ?? 0) - statusStream <= 0 { break }
            do { try await self.sleep(.milliseconds(100)) } catch { return }
        }
        handle.channel.close(promise: nil)
    }

    /// Drops the current tunnel at once, as a lost link would (it then reconnects with backoff).
    public func disconnect() {
        guard let handle = self.current.withLock({ $0 }) else { return }
        self.closing("dropped by TunnelClient.disconnect()")
        handle.channel.close(promise: nil)
    }

    /// Drains: tells the gateway on the status stream, then GOAWAY; in-flight jobs finish.
    public func drain() {
        self.responder.state.beginDrain(reason: "shutdown", seconds: self.configuration.drainSeconds)
        guard let handle = self.current.withLock({ $0 }) else { return }
        self.closing("this car drains (shutdown): GOAWAY sent, its jobs finish first")
        handle.execute { $0.beginGracefulShutdown() }
    }

    /// Records why the current tunnel is going, unless an earlier cause was recorded.
    private func closing(_ cause: String) {
        self.closeCause.withLock { if $0 == nil { $0 = cause } }
    }

    /// The tunnel is closed at once (the agent's task cancelled: a second signal during a drain): added
    /// after an earlier cause, which no longer says how it ended (helper-138: "this car drains" for a job cut).
    private func cut(_ cause: String) {
        self.closeCause.withLock { $0 = $0.map { "\($0); then cut: \(cause)" } ?? cause }
    }

    /// Why the tunnel closed, for "Tunnel closed": the first cause recorded (the gateway's GOAWAY or
    /// control message, this car's drain or move, an error), then what this car's HTTP/2 ended it for
    /// (`terminated`: a keepalive PING unanswered, a protocol error), else that nothing said why.
    private func closeReason(terminated: HTTP2ErrorCode?) -> String {
        let http2 = self.configuration.tunnelHTTP2
        let ended = terminated.map { code -> String in
            switch code {
            case .noError:  // the keepalive timeout's, the only one this car's HTTP/2 ends with NO_ERROR
                "a keepalive PING went unanswered for tunnelHTTP2.keepaliveTimeoutSeconds "
                    + "(\(Double(http2.keepaliveTimeout.nanoseconds) / 1e9) s): the link or the gateway is gone"
            case .settingsTimeout:
                "the gateway did not acknowledge this car's HTTP/2 SETTINGS within tunnelHTTP2.handshakeTimeoutSeconds"
            default: "this car's HTTP/2 ended the connection (\(code)): the gateway broke the protocol or a limit"
            }
        }
        let recorded = self.closeCause.withLock { $0 }
        switch (recorded, ended) {
        case (let cause?, let end?): return "\(cause); then \(end)"
        case (let cause?, nil): return cause
        case (nil, let end?): return end
        case (nil, nil):
            return "the connection ended without a GOAWAY or an error: the gateway's process stopped or found "
                + "the tunnel dead (PINGs unanswered), or a middlebox closed it"
        }
    }
}

/// Tells a tunnel that the gateway sent GOAWAY (the handler holds its delegate weakly: the tunnel
/// keeps this alive while connected), and logs the gateway's reason when it refused the car.
private final class GoAwayWatcher: HTTP2ConnectionDelegate, Sendable {
    private let logger: Logger
    private let metadata: Logger.Metadata
    private let onGoAway: @Sendable (_ refused: Bool) -> Void
    /// Records why the tunnel is going (the tunnel keeps the first cause).
    private let cause: @Sendable (String) -> Void
    private let caught = Mutex<String?>(nil)

    /// The first error the connection caught (a TLS handshake's), if any, as text.
    var firstError: String? { self.caught.withLock { $0 } }

    init(
        logger: Logger, metadata: Logger.Metadata, cause: @escaping @Sendable (String) -> Void,
        _ onGoAway: @escaping @Sendable (_ refused: Bool) -> Void
    ) {
        self.logger = logger
        self.metadata = metadata
        self.cause = cause
        self.onGoAway = onGoAway
    }

    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode, debugData: String) {
        // A refusal (a bad hello, models or state) comes as a GOAWAY with an error and its reason
        // (helper-70: the car logged "Tunnel connected" and "retired", never why).
        if errorCode != .noError {
            var metadata = self.metadata
            metadata["error.type"] = "\(errorCode)"
            metadata["fleet.reason"] = "\(debugData)"
            self.logger.warning("The gateway closed the tunnel with an error", metadata: metadata)
        }
        // Its reason, or what a GOAWAY without one means (helper-137: "Tunnel closed" said nothing).
        var why = debugData.isEmpty ? "" : ": \(debugData)"
        if debugData.isEmpty, errorCode == .noError {
            why =
                ": the gateway stops or drains, moved the car to another replica, or a newer tunnel of this car replaced it"
        }
        self.cause("the gateway's GOAWAY (\(errorCode))\(why)")
        self.onGoAway(errorCode != .noError)
    }
    func connectionDidClose() {}

    func connectionDidCatch(_ error: any Error) {
        self.caught.withLock { if $0 == nil { $0 = String(describing: error) } }
        self.cause("an error on the connection (see error.message)")
    }
}
