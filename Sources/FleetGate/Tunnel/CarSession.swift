import CoreMetrics
import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import Logging
import NIOCore
import NIOSSL

/// The gateway's side of one car's tunnel, on the tunnel's event loop.
///
/// Responsibilities:
/// 1. open `GET /fleet/v1/status` as soon as the car connects (the gateway is the HTTP/2 client);
/// 2. verify the hello within ``GatewayConfiguration/helloTimeout``: schema version, credential
///    (constant-time HMAC), claimed region allowed by the credential — a car cannot declare itself
///    into a zone; only then register it for routing;
/// 3. apply state and drain messages to the registry;
/// 4. PING every ``GatewayConfiguration/carPingInterval`` while idle and every
///    ``GatewayConfiguration/busyPingInterval`` while it runs jobs, recording the RTT; two PINGs
///    missed in a row mean the car is dead (frozen, or its link gone without a FIN): the tunnel is
///    closed at once so its streams fail over (DESIGN.md, Contracts: deadlines);
/// 5. tell the attempts running on the car when it announces its departure (a drain notice or a
///    state with `departing_in_s`), so streams that cannot finish in time move before it goes;
/// 6. send control messages (`POST /fleet/v1/control`): `reconnect` when the gateway drains;
/// 7. deregister when the tunnel closes or the car sends GOAWAY (no new work, streams finish);
/// 8. enforce the credential's expiry on the live tunnel: at expiry the car gets no new work, is
///    told `token-expired` on the control channel, and the tunnel closes once its streams finish;
/// 9. issue #20: with `tunnel.auth: certificate` the identity is the mTLS peer certificate (the
///    hello's vehicle id must be the certificate's, the regions are the certificate's); a revoked
///    or quarantined car is refused at hello, and told `quarantine` and closed when a reload or
///    its audits turn against it while connected (``enforceTrust()``).
final class CarSession: HTTP2ConnectionDelegate, HTTPStreamDelegate {
    let core: GatewayCore
    let handle: HTTP2ConnectionHandle
    var logger: Logger
    /// The vehicle id of the hello, at most 64 characters, for a refusal's log line.
    private var claimedVehicleID: String?
    var carID: CarID?
    /// When the car registered, and the GOAWAY code it sent, if any: what an operator reads in the
    /// disconnect's log line.
    private var registeredAt: NIODeadline?
    private var goAwayCode: HTTP2ErrorCode?
    var region: String?
    /// A reload removed the car's region; it is draining (``leaveIfRegionRemoved()``).
    var leavingRemovedRegion = false
    /// The vehicle id and certificate identity verified at hello.
    var vehicleID: String?
    var identity: VehicleIdentity?
    /// Frames and decodes the status stream (issue #20: extracted so the fuzzer and CI replay drive the same code).
    var status = StatusStreamDecoder()
    /// Status lines: a burst of 100, then 20 a second (an agent sends one a change), or the tunnel is refused.
    var statusBudget = TokenBucket(capacity: 100, rate: 20, now: 0)
    var helloTimer: Scheduled<Void>?
    var pingTimer: Scheduled<Void>?
    var expiryTimer: Scheduled<Void>?
    var statusStream: HTTP2Stream?
    /// Whether the last PING is still unanswered, and how many ticks found one unanswered.
    var pingOutstanding = false
    var pingSentAt: NIODeadline = .now()
    var missedPings = 0
    /// Whether PINGs run at the busy cadence.
    var busyCadence = false
    /// The other replicas' tunnel addresses last told to the car (issue #21, `CarSession+Cluster.swift`).
    var toldReplicas: [String]?

    init(core: GatewayCore, handle: HTTP2ConnectionHandle) {
        self.core = core
        self.handle = handle
        self.logger = core.logger
        self.logger[metadataKey: "fleet.connection.peer"] = "\(handle.channel.remoteAddress.map { "\($0)" } ?? "?")"
    }

    /// Opens the status stream and arms the hello timer.
    func start() {
        let handler = self.handle.onLoop
        handler.delegate = self
        var request = HTTPRequest(method: .get, scheme: "http", authority: "car", path: FleetStatus.path)
        request.headerFields[.accept] = FleetStatus.contentType
        do {
            self.statusStream = try handler.openStream(request, endStream: true, delegate: self)
        } catch {
            handler.terminate(.internalError)
            return
        }
        let loopBound = NIOLoopBound(self, eventLoop: self.handle.eventLoop)
        self.helloTimer = self.handle.eventLoop.scheduleTask(in: self.core.configuration.helloTimeout) {
            loopBound.value.reject("no hello in time")
        }
    }

    // MARK: Status stream

    func streamDidReceiveResponse(_ response: HTTPResponse) {
        if response.status != .ok { self.reject("status stream answered \(response.status.code)") }
    }

    func streamDidReceiveData(_ data: ByteBuffer) {
        self.statusStream?.consume(data.readableBytes)
        for result in self.status.feed(data.readableBytesView) {
            switch result {
            case .success(let message):
                guard self.statusBudget.take(1, now: self.core.now) == nil else { return self.reject("status flood") }
                self.received(message)
            case .failure(let failure): return self.reject(failure.reason)
            }
        }
    }

    func streamDidReceiveEnd(trailers: HTTPFields?) {}

    func streamDidClose(error: HTTPStreamError?) {
        // Without its status stream the car cannot be trusted with work.
        if let id = self.carID { self.core.registry.setDraining(id) }
    }

    private func received(_ message: StatusMessage) {
        switch message.type {
        case .hello: self.hello(message)
        case .state:
            guard let id = self.carID, let state = message.state else { return self.reject("state before hello") }
            self.core.registry.update(id, state: state, now: self.core.now)
            self.applyPrimary(message)  // cluster (#21)
            // The agent's own measurement of its engine, when it sends one.
            if let models = message.models {
                if let problem = FleetStatus.problem(with: models, requireOne: false) { return self.reject(problem) }
                self.core.registry.updateRates(id, models: models)
            }
            if let seconds = state.departingInSeconds {
                self.core.tunnels.announceDeparture(id, secondsLeft: Double(max(0, seconds)))
            }
        case .drain:
            guard let id = self.carID else { return self.reject("drain before hello") }
            self.core.registry.setDraining(id)
            self.logger.info("Car draining", metadata: ["fleet.drain.seconds": "\(message.secondsLeft ?? 0)"])
            self.core.tunnels.announceDeparture(id, secondsLeft: Double(max(0, message.secondsLeft ?? 0)))
        }
    }

    private func hello(_ message: StatusMessage) {
        guard self.carID == nil else { return self.reject("second hello") }
        self.claimedVehicleID = message.vehicleID.map { String($0.prefix(64)) }
        guard let vehicleID = message.vehicleID, let credential = message.credential, let region = message.region,
            let hardware = message.hardware, let models = message.models, let slots = message.slots, slots > 0,
            let state = message.state
        else { return self.reject("incomplete hello") }
        // An empty or huge model list is this car's protocol error, never the registry's trap.
        if let problem = FleetStatus.problem(with: models) { return self.reject(problem) }
        let metrics = self.core.trust.metrics
        let grant: FleetCredentials.Grant
        do { grant = try self.verifiedGrant(credential: credential, vehicleID: vehicleID) } catch {
            // For good: the car stops dialling until it is given a new token (helper-130: it redialled for ever).
            if error == .tokenExpired { self.send(ControlMessage(type: .tokenExpired, reason: error.reason)) }
            return self.reject(error.reason, counting: metrics.refusedIdentity)
        }
        if let refusal = self.core.trust.refusal(vehicleID: vehicleID, identity: self.identity) {
            self.send(ControlMessage(type: .quarantine, reason: refusal))
            return self.reject(refusal, counting: metrics.refusalCounter(refusal))
        }
        guard grant.regions.contains(region) else {
            return self.reject("credential does not allow its region", counting: metrics.refusedRegionNotAllowed)
        }
        // The credential allowed it, so the map lost it (renamed, removed); counted (helper-101).
        guard let zone = self.core.geo.current.map.zone(ofRegion: region) else {
            return self.reject("region '\(region)' is not in the region map", counting: metrics.refusedRegion)
        }
        self.helloTimer?.cancel()
        var descriptor = CarDescriptor(
            vehicleID: vehicleID, pseudonym: self.core.credentials.pseudonym(of: vehicleID), region: region,
            zone: zone.id,
            hardware: hardware, models: models, slots: min(slots, FleetStatus.maxSlots),
            queueDepth: min(max(0, message.queue ?? 0), 64),
            policy: message.policy ?? OwnerPolicy(), continuation: message.continuation ?? .none,
            promptCache: message.cache)
        descriptor.primary = message.primary ?? true  // cluster (#21): a car's second tunnel is not counted twice
        descriptor.elsewhere = message.elsewhere.map(Self.boundedElsewhere)
        let (id, replaced) = self.core.tunnels.register(self.handle) {
            self.core.registry.register(descriptor, state: state, now: self.core.now)
        }
        if let old = replaced {
            old.execute { $0.beginGracefulShutdown() }
            // A car that reconnected before its old tunnel was found dead, or two agents with one
            // vehicle id taking it from each other for ever (helper-65: seen only as info lines).
            self.core.metrics.carTakeovers.increment()
            if self.core.takeoverWarnings.shouldWarn(vehicleID, now: self.core.now) {
                self.logger.warning(
                    "Car took over its vehicle id's open tunnel",
                    metadata: [
                        "fleet.vehicle": "\(descriptor.pseudonym)",
                        "fleet.hint":
                            "two agents with one vehicle id replace each other's tunnel; at most one warning a minute per car",
                    ])
            }
        }
        self.carID = id
        self.region = region
        self.vehicleID = vehicleID
        self.checkPeerLocation(claimedZone: zone.id)
        self.core.rememberModels(models.map(\.id))
        self.core.publishCarCount(region: region)
        self.logger[metadataKey: "fleet.vehicle"] = "\(descriptor.pseudonym)"
        self.registeredAt = .now()
        // Info, as its disconnect: a car's tunnel lost under load was visible only in a counter (helper-61).
        // The models' context windows, as JSON (helper-125: an operator could check them only with a long prompt).
        let windows = JSON.buffer(Dictionary(models.map { ($0.id, $0.contextTokens) }) { first, _ in first })
        self.logger.info(
            "Car registered",
            metadata: [
                "fleet.region": "\(region)", "fleet.hardware": "\(hardware.rawValue)",
                "fleet.context_tokens": "\(String(buffer: windows))",
            ])
        self.schedulePing()
        self.armExpiry(grant.expires)
        self.core.credentialExpiries.set(ObjectIdentifier(self), expires: grant.expires.timeIntervalSince1970)
        self.tellReplicas()  // cluster (#21)
        if self.core.isDraining {
            self.send(self.reconnectMessage())  // registered after the drain's notice went out
        }
    }

    /// Issue #20: after a revocation reload or a failed audit, a car that may no longer serve is
    /// told `quarantine` on the control channel, gets no new work, and its tunnel is closed (its
    /// streams fail over: a revoked car's text is not waited for).
    func enforceTrust() {
        guard let id = self.carID, let vehicleID = self.vehicleID,
            let refusal = self.core.trust.refusal(vehicleID: vehicleID, identity: self.identity)
        else { return }
        self.core.trust.metrics.revokedLive.increment()
        self.logger.warning("Car no longer trusted; closing its tunnel", metadata: ["fleet.reason": "\(refusal)"])
        self.core.registry.setDraining(id)
        self.send(ControlMessage(type: .quarantine, reason: refusal))
        let channel = self.handle.channel
        // A moment for the control message's frames to leave before the close.
        self.handle.eventLoop.scheduleTask(in: .milliseconds(200)) { channel.close(promise: nil) }
    }

    /// A reload removed the car's region from the map: its hello would now be refused, so it gets no
    /// new work and its tunnel closes (GOAWAY) once its streams finish; no `reconnect` is sent, as the
    /// agent would dial again at once and be refused. Until then it keeps the zone it joined, which the
    /// reloader checks a new map against.
    func leaveIfRegionRemoved() {
        guard let id = self.carID, let region = self.region, !self.leavingRemovedRegion,
            self.core.geo.current.map.regions[region] == nil
        else { return }
        self.leavingRemovedRegion = true
        self.logger.warning(
            "The car's region is no longer in the region map; closing its tunnel once its streams finish",
            metadata: ["fleet.region": "\(region)"])
        self.core.registry.setDraining(id)
        self.handle.onLoop.beginGracefulShutdown()
    }

    /// Issue #18 row 7: the token's expiry holds on a live tunnel, not only at hello.
    private func armExpiry(_ expires: Date) {
        let milliseconds = Int64(min(max(0, expires.timeIntervalSinceNow), 10 * 365 * 86_400) * 1_000)
        let loopBound = NIOLoopBound(self, eventLoop: self.handle.eventLoop)
        self.expiryTimer = self.handle.eventLoop.scheduleTask(in: .milliseconds(milliseconds)) {
            loopBound.value.tokenExpired()
        }
    }

    /// Drains the car, tells it why on the control channel, then GOAWAY once its streams finish.
    func tokenExpired() {
        guard let id = self.carID else { return }
        self.logger.info("Car credential expired; closing its tunnel")
        self.core.registry.setDraining(id)
        let handler = self.handle.onLoop
        self.send(ControlMessage(type: .tokenExpired, reason: "token expired"))
        handler.beginGracefulShutdown()
    }

    /// Refuses the car (GOAWAY PROTOCOL_ERROR), counted in `fleet_car_refused_total` by `counting` or as `protocol`.
    private func reject(_ reason: String, counting counter: Counter? = nil) {
        (counter ?? self.core.trust.metrics.refusedProtocol).increment()
        // The claimed vehicle id's pseudonym (logs never show ids; helper-128), and at most one warning a
        // minute per peer address: a misconfigured car is refused at every dial (helper-70).
        var metadata: Logger.Metadata = ["fleet.reason": "\(reason)"]
        let claimed = self.claimedVehicleID.map { self.core.credentials.pseudonym(of: $0) }
        if let claimed { metadata["fleet.vehicle.claimed"] = "\(claimed)" }
        self.logger.log(level: self.refusalLevel(kind: "hello"), "Car rejected", metadata: metadata)
        self.helloTimer?.cancel()
        self.handle.onLoop.goAway(.protocolError, debugData: reason)
    }

    private func schedulePing() {
        // Closed (a tick that found two PINGs missed closes the tunnel, and `connectionDidClose` runs
        // inside that close, before the tick reschedules): no more ticks. Without this the session, its
        // channel and nghttp2 session lived on, ticking and logging every interval, for every dead car.
        guard self.carID != nil else { return }
        let loopBound = NIOLoopBound(self, eventLoop: self.handle.eventLoop)
        // The status stream is always open: more than one stream means jobs are running.
        self.busyCadence = self.handle.onLoop.openStreamCount > 1
        let interval =
            self.busyCadence ? self.core.configuration.busyPingInterval : self.core.configuration.carPingInterval
        self.pingTimer = self.handle.eventLoop.scheduleTask(in: interval) {
            let session = loopBound.value
            session.pingTick()
            session.schedulePing()
        }
    }

    /// A job started on this tunnel: switch to the busy PING cadence now rather than at the next tick.
    func jobStarted() {
        guard self.carID != nil, !self.busyCadence else { return }
        self.pingTimer?.cancel()
        self.busyCadence = true
        let loopBound = NIOLoopBound(self, eventLoop: self.handle.eventLoop)
        self.pingTimer = self.handle.eventLoop.scheduleTask(in: self.core.configuration.busyPingInterval) {
            let session = loopBound.value
            session.pingTick()
            session.schedulePing()
        }
    }

    /// One PING tick: count a missed answer, declare the car dead after two, else PING again.
    /// A PING counts as missed only when nothing at all arrived from the car since it was sent and
    /// it is at least a second old: a busy gateway loop or a car streaming data is not a dead car.
    private func pingTick() {
        if self.pingOutstanding {
            let now = NIODeadline.now()
            if self.handle.onLoop.lastInboundAt > self.pingSentAt || now - self.pingSentAt < .seconds(1) { return }
            self.missedPings += 1
            if self.missedPings >= 2 {
                self.core.metrics.carsDead.increment()
                self.logger.warning("Car missed two PINGs; closing its tunnel so its streams move")
                self.handle.channel.close(promise: nil)
                return
            }
            return
        }
        self.pingNow()
    }

    /// Sends a PING now and records its RTT.
    func pingNow() {
        guard let id = self.carID else { return }
        let registry = self.core.registry
        self.pingOutstanding = true
        self.pingSentAt = NIODeadline.now()
        let loopBound = NIOLoopBound(self, eventLoop: self.handle.eventLoop)
        self.handle.onLoop.ping().whenSuccess { rtt in
            registry.recordRTT(id, milliseconds: Double(rtt.nanoseconds) / 1e6)
            let session = loopBound.value
            session.pingOutstanding = false
            session.missedPings = 0
        }
    }

    /// Sends a control message on the tunnel (the answer is only read, not acted on).
    func send(_ message: ControlMessage) {
        var request = HTTPRequest(method: .post, scheme: "http", authority: "car", path: ControlMessage.path)
        request.headerFields[.contentType] = "application/json"
        guard let stream = try? self.handle.onLoop.openStream(request, endStream: false, delegate: DiscardingDelegate())
        else { return }
        stream.sendData(JSON.buffer(message), endStream: true)
    }

    // MARK: Connection

    func connectionDidReceiveGoAway(lastStreamID: Int32, errorCode: HTTP2ErrorCode, debugData: String) {
        self.goAwayCode = errorCode
        if let id = self.carID { self.core.registry.setDraining(id) }
    }

    /// A refused TLS handshake (a car certificate from another CA, an expired one, a car speaking
    /// cleartext to a TLS port) was logged nowhere (helper-73): a warning a minute per peer address, and
    /// counted in `fleet_car_refused_total{reason="tls"}`.
    func connectionDidCatch(_ error: any Error) {
        guard self.carID == nil, error is NIOSSLError || error is BoringSSLError else { return }
        self.core.trust.metrics.refusedTLS.increment()
        self.logger.log(
            level: self.refusalLevel(kind: "tls"), "Car TLS handshake failed",
            metadata: ["error.message": "\(String(describing: error).prefix(300))"])
    }

    /// Warning for the first refusal of `kind` from this peer address in a minute, debug for the rest: a
    /// misconfigured car is refused at every dial.
    private func refusalLevel(kind: String) -> Logger.Level {
        let key = kind + " " + (self.handle.channel.remoteAddress?.ipAddress ?? "?")
        return self.core.rejectionWarnings.shouldWarn(key, now: self.core.now) ? .warning : .debug
    }

    func connectionWillShutDown() {
        // The status stream never ends by itself; without it the tunnel closes once jobs finish.
        if let id = self.carID { self.core.registry.setDraining(id) }
        self.statusStream?.reset(.noError)
    }

    func connectionDidClose() {
        self.helloTimer?.cancel()
        self.pingTimer?.cancel()
        self.expiryTimer?.cancel()
        self.core.credentialExpiries.remove(ObjectIdentifier(self))
        if let id = self.carID {
            // The jobs the close cut (the registry's count is already 0: each stream's close released its slot).
            let statusID = self.statusStream?.id
            let inFlight = self.handle.onLoop.streamsCutByClose.count { $0 != statusID }
            self.core.registry.remove(id, now: self.core.now)
            if self.core.tunnels.handle(for: id)?.channel === self.handle.channel { self.core.tunnels.remove(id) }
            if let region = self.region { self.core.publishCarCount(region: region) }
            let seconds = self.registeredAt.map { (NIODeadline.now() - $0).nanoseconds / 1_000_000_000 } ?? 0
            self.logger.info(
                "Car disconnected",
                metadata: [
                    "fleet.region": "\(self.region ?? "-")", "fleet.connected_seconds": "\(seconds)",
                    "fleet.goaway": "\(self.goAwayCode.map { String(reflecting: $0) } ?? "none")",
                    "fleet.in_flight": "\(inFlight)",
                ])
        }
        self.carID = nil
    }
}
