package import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import Foundation
package import Logging
package import NIOCore
package import Synchronization

/// The harness's cars: each a ``SimulatedCar`` — the agent's real tunnel client, HTTP/2 server
/// role, status stream and synthetic engine — many in this process, over real TCP (or TLS)
/// connections to the gateway's tunnel port. Every car appends its jobs to one shared job log.
///
/// Churn acts on the real objects: unplugging updates the car's state (the status stream tells
/// the gateway), departing with notice announces it, then drains; killing cancels the car's task
/// (its socket closes without GOAWAY and it never dials again); freezing stops reading and
/// swallows every write (PINGs go unanswered, as with a stopped process), then closes.
package final class Fleet: Sendable {
    private struct Running: Sendable {
        var car: SimulatedCar
        var task: Task<Void, Never>
    }

    let plan: [RunPlan.Car]
    let tunnelHost: String
    let tunnelPort: Int
    let credentials: FleetCredentials
    let group: any EventLoopGroup
    let tls: AgentConfiguration.TunnelTLS?
    let jobLog: JobLog
    let logger: Logger
    /// Whether each car's tunnel goes through a ``LinkEmulator`` with its planned link profile.
    let emulateLinks: Bool
    private let running = Mutex<[Int: Running]>([:])
    /// Set by ``stopAll()``: late timers (rejoins) start nothing.
    private let stopped = Atomic<Bool>(false)
    /// Churn events applied, by kind (for the report).
    package let applied = Mutex<[(at: Double, kind: String, car: Int)]>([])

    package init(
        plan: [RunPlan.Car], tunnelHost: String = "127.0.0.1", tunnelPort: Int, secret: String, group: any EventLoopGroup,
        tls: AgentConfiguration.TunnelTLS?, jobLogPath: String, logger: Logger, emulateLinks: Bool = true
    ) throws {
        self.emulateLinks = emulateLinks
        self.plan = plan
        self.tunnelHost = tunnelHost
        self.tunnelPort = tunnelPort
        self.credentials = try FleetCredentials(secret: secret)
        self.group = group
        self.tls = tls
        self.jobLog = try JobLog(path: jobLogPath, region: "-", vehicleID: "-")
        self.logger = logger
    }

    /// Starts every car, at most `perSecond` and at most 64 dialling at once (a fleet does not dial
    /// in one instant; thousands at once would only measure the accept queue, the harness's own CPU
    /// and the hello timeout, then a reconnect storm).
    package func startAll(perSecond: Double) async {
        let batch = max(1, Int(perSecond / 20))
        for car in self.plan {
            self.start(car.index)
            if car.index % batch == batch - 1 {
                try? await Task.sleep(for: .milliseconds(50))
                var waited = 0
                while car.index + 1 - self.connected > 64 && waited < 200 {
                    try? await Task.sleep(for: .milliseconds(50))
                    waited += 1
                }
            }
        }
    }

    /// Starts car `index` (again, after it left).
    package func start(_ index: Int) {
        guard !self.stopped.load(ordering: .relaxed) else { return }
        let spec = self.plan[index]
        let token = self.credentials.issue(
            vehicleID: spec.vehicleID, regions: [spec.region], expires: Date().addingTimeInterval(86_400))
        var configuration = AgentConfiguration(
            gatewayHost: self.tunnelHost, gatewayPort: self.tunnelPort, vehicleID: spec.vehicleID, credential: token,
            region: spec.region, hardware: spec.hardware, policy: spec.policy, initialBackoff: .milliseconds(100),
            maxBackoff: .seconds(2), drainSeconds: 10, tls: self.tls)
        if self.emulateLinks {
            let link = spec.link
            let seed = UInt64(index) &* 0x9E37_79B9_7F4A_7C15
            configuration.socketHandlers = { channel in
                try channel.pipeline.syncOperations.addHandler(LinkEmulator(profile: link, seed: seed))
            }
        }
        let car = SimulatedCar(
            configuration: configuration, state: spec.state, slowdown: spec.slowdown, group: self.group,
            logger: self.logger,
            jobLog: JobLog(sharing: self.jobLog, region: spec.region, vehicleID: spec.vehicleID))
        let task = Task { _ = try? await car.tunnel.run() }
        self.running.withLock { $0[index] = Running(car: car, task: task) }
    }

    /// Cars with a tunnel up now.
    package var connected: Int { self.running.withLock { $0.values.filter { $0.car.tunnel.isConnected }.count } }

    /// Applies one churn event at `now` seconds into the run; schedules its later steps and the rejoin.
    package func apply(_ event: RunPlan.ChurnEvent, now: Double) {
        guard let running = self.running.withLock({ $0[event.car] }) else { return }
        self.applied.withLock { $0.append((now, event.kind.rawValue, event.car)) }
        let car = running.car
        switch event.kind {
        case .unplug:
            car.state.update { $0.pluggedIn = false }
        case .departWithNotice:
            car.state.update { $0.departingInSeconds = event.noticeSeconds }
            self.later(Double(event.noticeSeconds)) {
                car.tunnel.drain()
                self.later(10) { self.remove(event.car, rejoinAfter: event.rejoinAfter) }
            }
        case .kill:
            self.remove(event.car, rejoinAfter: event.rejoinAfter)
        case .departWithoutNotice:
            // Out of coverage: silence (no FIN, no GOAWAY); the socket is gone for good 30 s later.
            Self.freeze(car)
            self.later(30) { self.remove(event.car, rejoinAfter: event.rejoinAfter.map { max(0, $0 - 30) }) }
        case .freeze:
            Self.freeze(car)
            // A frozen car stays frozen until the run ends unless it is to come back.
            if let rejoin = event.rejoinAfter { self.later(rejoin) { self.remove(event.car, rejoinAfter: 0) } }
        case .drain:
            car.tunnel.drain()
            self.later(10) { self.remove(event.car, rejoinAfter: event.rejoinAfter) }
        }
    }

    /// Stops reading and swallows every write: the car looks like a stopped process (or one out of coverage).
    static func freeze(_ car: SimulatedCar) {
        guard let channel = car.tunnel.channel else { return }
        channel.eventLoop.execute {
            _ = channel.setOption(ChannelOptions.autoRead, value: false)
            try? channel.pipeline.syncOperations.addHandler(FreezeHandler(), position: .first)
        }
    }

    /// Ends car `index`'s task (its socket closes, no GOAWAY) and starts it again after `rejoinAfter`.
    func remove(_ index: Int, rejoinAfter: Double?) {
        let running = self.running.withLock { $0.removeValue(forKey: index) }
        running?.task.cancel()
        if let rejoinAfter { self.later(rejoinAfter) { self.start(index) } }
    }

    private func later(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
        self.group.next().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { body() }
    }

    /// Stops every car at once (the end of the run) and waits for their tasks.
    package func stopAll() async {
        self.stopped.store(true, ordering: .relaxed)
        let all = self.running.withLock { running in
            defer { running.removeAll() }
            return Array(running.values)
        }
        for car in all { car.task.cancel() }
        for car in all { await car.task.value }
    }
}

/// Swallows every outbound write and flush: with `autoRead` off, the car looks like a stopped process.
private final class FreezeHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.succeed()
    }
    func flush(context: ChannelHandlerContext) {}
}
