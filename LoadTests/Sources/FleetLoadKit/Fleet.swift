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
    /// The tasks of cars removed during the run (one a churn event; cancelled, perhaps not yet ended).
    private let leaving = Mutex<[Task<Void, Never>]>([])
    /// Set by ``stopAll()``: late timers (rejoins) start nothing.
    private let stopped = Atomic<Bool>(false)
    /// Churn events applied, by kind (for the report).
    package let applied = Mutex<[(at: Double, kind: String, car: Int)]>([])

    package init(
        plan: [RunPlan.Car], tunnelHost: String = "127.0.0.1", tunnelPort: Int, secret: String,
        group: any EventLoopGroup,
        tls: AgentConfiguration.TunnelTLS?, jobLogPath: String, logger: Logger, emulateLinks: Bool = true
    ) throws {
        self.emulateLinks = emulateLinks
        self.plan = plan
        self.tunnelHost = tunnelHost
        self.tunnelPort = tunnelPort
        self.credentials = try FleetCredentials(secret: secret)
        self.group = group
        // The run's certificate never changes: one car checks its TLS files every 5 s, ten thousand
        // in one process would stat 2,000 files a second for nothing.
        self.tls = tls.map {
            var tls = $0
            tls.pollInterval = .seconds(3_600)
            return tls
        }
        self.jobLog = try JobLog(path: jobLogPath, region: "-", vehicleID: "-")
        self.logger = logger
    }

    /// Starts every car, at most `perSecond` and at most ``maxDialling`` dialling at once (a fleet
    /// does not dial in one instant; thousands at once would only measure the accept queue, the
    /// harness's own CPU and the hello timeout, then a reconnect storm).
    package func startAll(perSecond: Double) async {
        await self.start(self.plan.indices, perSecond: perSecond)
    }

    /// Cars dialling (started, status stream not yet open) at most at once while the fleet starts.
    static let maxDialling = 64

    /// Starts cars `indices` (in order, none started before), paced as ``startAll(perSecond:)``:
    /// the rate is kept against the clock, not by sleeping a fixed time per batch (late wake-ups on
    /// a busy machine would slow the whole start), and while ``maxDialling`` cars are dialling the
    /// next one waits (at most 10 s, so a gateway that never answers cannot stall the run).
    package func start(_ indices: Range<Int>, perSecond: Double) async {
        let clock = ContinuousClock()
        let begin = clock.now
        var next = indices.lowerBound
        // Started cars whose status stream the gateway has not opened yet (TCP connect, TLS
        // handshake, the gateway's set-up): a short list, so the cap costs nothing per car (walking
        // every car each tick cost the harness a third of its CPU at 5,000 cars), and the start slows
        // to what the gateway accepts rather than queueing into its hello timeout.
        var dialling: [SimulatedCar] = []
        var blockedSince: ContinuousClock.Instant?
        while next < indices.upperBound {
            let due = min(indices.upperBound, indices.lowerBound + 1 + Int((clock.now - begin).seconds * perSecond))
            dialling.removeAll { $0.state.hasSubscribers }
            while next < due {
                if dialling.count >= Self.maxDialling {
                    if blockedSince.map({ clock.now - $0 < .seconds(10) }) ?? true {
                        blockedSince = blockedSince ?? clock.now
                        break
                    }
                    dialling.removeAll()  // 10 s without progress (a slow or refusing gateway): go on
                }
                if let car = self.start(next) { dialling.append(car) }
                next += 1
                blockedSince = nil
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Starts car `index` (again, after it left); nil once the fleet is stopped, or while the car runs.
    @discardableResult
    package func start(_ index: Int) -> SimulatedCar? {
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
        // Claimed under the lock that ``stopAll()`` and ``remove(_:rejoinAfter:)`` take: a car whose churn
        // events overlap (a departure's removal, then a kill's rejoin) was started twice, and the first
        // copy, no longer in `running`, was never stopped — a second tunnel of one vehicle during the run,
        // and after it a car redialling on loops already shut down (helper-103: NIO's "Cannot schedule
        // tasks on an EventLoop that has already shut down" at the end of churn-storm).
        return self.running.withLock { running in
            guard !self.stopped.load(ordering: .relaxed), running[index] == nil else { return nil }
            running[index] = Running(car: car, task: Task { _ = try? await car.tunnel.run() })
            return car
        }
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
        let running = self.running.withLock { running in
            let car = running.removeValue(forKey: index)
            // Still closing: ``stopAll()`` waits for it before the loops shut down (helper-106).
            if let car { self.leaving.withLock { $0.append(car.task) } }
            return car
        }
        running?.task.cancel()
        if let rejoinAfter { self.later(rejoinAfter) { self.start(index) } }
    }

    private func later(_ seconds: Double, _ body: @escaping @Sendable () -> Void) {
        // After the run's end the cars' loops shut down: a churn event's follow-up (a car coming
        // back) must not schedule on them (NIO's "Cannot schedule tasks on an EventLoop that has
        // already shut down").
        guard !self.stopped.load(ordering: .relaxed) else { return }
        self.group.next().scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { body() }
    }

    /// Stops every car at once (the end of the run) and waits for their tasks.
    package func stopAll() async {
        let all = self.running.withLock { running in
            self.stopped.store(true, ordering: .relaxed)
            defer { running.removeAll() }
            return Array(running.values)
        }
        for car in all { car.task.cancel() }
        for car in all { await car.task.value }
        for task in self.leaving.withLock({ $0 }) { await task.value }
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
