import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One event loop's ``LoadShedder``, and the timer that measures the loop: every 5 ms
/// (``LoadShedder/Configuration/interval``; 50 ms while the loop is far from its limit,
/// ``LoadShedder/nextInterval``) a task asks to run that far from now and records how
/// late it ran, and how busy the loop's thread was meanwhile (``ThreadBusyTime``, read on that
/// thread). Admission reads the clock too, for the shedder's in-pass ceiling. The measurements also
/// write the loop's ``ShedReport`` lines: its refusals are logged as episodes, not one by one.
///
/// All state is touched on ``eventLoop`` only (the lag task runs there, and client streams call
/// ``admit()`` and ``finished()`` from their own loop, which is this one), so there is no lock.
final class EventLoopLoad: @unchecked Sendable {
    let eventLoop: any EventLoop
    /// The loop's per-request deadlines (``LoopTimers``), on one NIO timer.
    let timers: LoopTimers
    /// The loop's number in its group, for the log.
    let index: Int
    private let logger: Logger
    private var report = ShedReport()
    private let configuration: @Sendable () -> LoadShedder.Configuration
    private var shedder: LoadShedder
    private var timer: Scheduled<Void>?
    private var stopped = false
    /// Opened by the first measurement, on the loop's thread.
    private var threadClock: ThreadBusyTime?
    private var lastSample: (running: UInt64, waiting: UInt64)?

    init(
        eventLoop: any EventLoop, index: Int = 0,
        logger: Logger = Logger(label: "fleetgate", factory: { _ in SwiftLogNoOpLogHandler() }),
        configuration: @escaping @Sendable () -> LoadShedder.Configuration
    ) {
        self.eventLoop = eventLoop
        self.index = index
        self.logger = logger
        self.timers = LoopTimers(eventLoop: eventLoop)
        self.configuration = configuration
        self.shedder = LoadShedder(configuration: configuration())
    }

    /// Starts measuring lag.
    func start() {
        self.eventLoop.execute { self.arm() }
    }

    /// Stops measuring (shutdown).
    func stop() {
        self.eventLoop.execute {
            self.stopped = true
            self.timer?.cancel()
            self.shedder.measurementsStopped()
            if let line = self.report.stopped() { self.log(line) }
        }
    }

    private func arm(at due: NIODeadline? = nil) {
        guard !self.stopped else { return }
        let due = due ?? NIODeadline.now() + self.shedder.nextInterval
        self.timer = self.eventLoop.scheduleTask(deadline: due) {
            let now = NIODeadline.now()
            self.shedder.configuration = self.configuration()  // reloads take effect within 50 ms
            self.shedder.measured(lag: now > due ? now - due : .zero, thread: self.threadTime(at: now), at: now)
            if let line = self.report.measured(at: now) { self.log(line) }
            self.arm()
        }
    }

    private func log(_ line: ShedReport.Line) {
        let lag = self.shedder.lastLag.nanoseconds / 1_000_000
        let seconds = { (over: TimeAmount) in "\(Double(over.nanoseconds / 1_000_000) / 1000)" }
        switch line {
        case .started(let refused, let reason):
            self.logger.warning(
                "Event loop overloaded: refusing new requests 503 server_overloaded",
                metadata: [
                    "fleet.loop": "\(self.index)", "fleet.refused": "\(refused)", "fleet.reason": "\(reason.rawValue)",
                    "fleet.lag_ms": "\(lag)",
                ])
        case .continuing(let refused, let over, let reason):
            self.logger.warning(
                "Event loop still overloaded",
                metadata: [
                    "fleet.loop": "\(self.index)", "fleet.refused": "\(refused)", "fleet.reason": "\(reason.rawValue)",
                    "fleet.seconds": "\(seconds(over))", "fleet.lag_ms": "\(lag)",
                ])
        case .ended(let refused, let over):
            self.logger.notice(
                "Event loop no longer overloaded",
                metadata: [
                    "fleet.loop": "\(self.index)", "fleet.refused": "\(refused)",
                    "fleet.seconds": "\(seconds(over))",
                ])
        }
    }

    /// How the loop's thread spent the time since the previous measurement.
    private func threadTime(at now: NIODeadline) -> LoadShedder.ThreadTime? {
        let clock = self.threadClock ?? ThreadBusyTime()
        self.threadClock = clock
        guard let sample = clock.read() else { return nil }
        defer { self.lastSample = sample }
        guard let last = self.lastSample, sample.running >= last.running, sample.waiting >= last.waiting else {
            return nil
        }
        return .init(
            running: .nanoseconds(Int64(sample.running - last.running)),
            waiting: .nanoseconds(Int64(sample.waiting - last.waiting)))
    }

    /// Admits a new request on this loop, or says why not: ``screen()`` and, when it passes,
    /// ``admitted()``.
    func admit() -> LoadShedder.Decision {
        let decision = self.screen()
        if decision == .admit { self.admitted() }
        return decision
    }

    /// Decides on a new request on this loop without counting it in flight
    /// (``LoadShedder/screen(at:waited:)``); one that passes and goes on calls ``admitted()``.
    func screen() -> LoadShedder.Decision {
        self.eventLoop.assertInEventLoop()
        let now = NIODeadline.now()
        defer {
            if self.shedder.wantsEarlyMeasurement, let timer = self.timer {
                // A burst on a loop measured as idle: measure it at the busy interval from now on.
                timer.cancel()
                self.shedder.measuringSoon()
                self.arm(at: now + self.shedder.nextInterval)
            }
        }
        let decision: LoadShedder.Decision
        if self.shedder.isPastCeiling(at: now) {
            var waited = TimeAmount.zero
            if let last = self.lastSample, let sample = self.threadClock?.read(), sample.waiting >= last.waiting {
                waited = .nanoseconds(Int64(sample.waiting - last.waiting))
            }
            decision = self.shedder.screen(at: now, waited: waited)
        } else {
            decision = self.shedder.screen(at: now)
        }
        if case .shed(let reason) = decision { self.report.refused(reason) }
        return decision
    }

    /// A request that passed ``screen()`` goes on: it is in flight until ``finished()``.
    func admitted() {
        self.eventLoop.assertInEventLoop()
        if self.shedder.admitted() == .endAfterThisPass {
            self.eventLoop.execute { self.shedder.passEnded() }
        }
    }

    /// A request this loop admitted was refused after routing because its zone's capacity was all
    /// busy (``LoadShedder/upstreamBusy()``).
    func upstreamBusy() {
        self.eventLoop.assertInEventLoop()
        self.shedder.upstreamBusy()
    }

    /// An admitted request ended.
    func finished() {
        self.eventLoop.assertInEventLoop()
        self.shedder.requestFinished()
    }

    /// The last lag measured (for `/readyz`'s detail and the metric).
    var lastLag: TimeAmount { self.shedder.lastLag }

    /// Requests admitted in the loop's current pass (``LoadShedder/passAdmitted``), for tests.
    var passAdmitted: Int { self.shedder.passAdmitted }
}

/// The ``EventLoopLoad`` of every loop in the gateway's group, found by the loop a stream runs on.
final class EventLoopLoads: Sendable {
    private let loads: [ObjectIdentifier: EventLoopLoad]

    init(
        group: any EventLoopGroup, logger: Logger, configuration: @escaping @Sendable () -> LoadShedder.Configuration
    ) {
        var loads: [ObjectIdentifier: EventLoopLoad] = [:]
        for (index, loop) in group.makeIterator().enumerated() {
            loads[ObjectIdentifier(loop)] = EventLoopLoad(
                eventLoop: loop, index: index, logger: logger, configuration: configuration)
        }
        self.loads = loads
    }

    /// The load of `eventLoop`, or nil for a loop outside the group (then nothing is shed).
    func load(of eventLoop: any EventLoop) -> EventLoopLoad? { self.loads[ObjectIdentifier(eventLoop)] }

    func start() { self.loads.values.forEach { $0.start() } }
    func stop() { self.loads.values.forEach { $0.stop() } }
}
