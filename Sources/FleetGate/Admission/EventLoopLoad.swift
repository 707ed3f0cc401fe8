import NIOConcurrencyHelpers
import NIOCore

/// One event loop's ``LoadShedder``, and the timer that measures the loop's lag: every
/// ``interval`` a task asks to run `interval` from now and records how late it ran.
///
/// All state is touched on ``eventLoop`` only (the lag task runs there, and client streams call
/// ``admit()`` and ``finished()`` from their own loop, which is this one), so there is no lock.
final class EventLoopLoad: @unchecked Sendable {
    static let interval = TimeAmount.milliseconds(5)

    let eventLoop: any EventLoop
    private let configuration: @Sendable () -> LoadShedder.Configuration
    private var shedder: LoadShedder
    private var timer: Scheduled<Void>?
    private var stopped = false

    init(eventLoop: any EventLoop, configuration: @escaping @Sendable () -> LoadShedder.Configuration) {
        self.eventLoop = eventLoop
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
        }
    }

    private func arm() {
        guard !self.stopped else { return }
        let due = NIODeadline.now() + Self.interval
        self.timer = self.eventLoop.scheduleTask(deadline: due) {
            let now = NIODeadline.now()
            self.shedder.configuration = self.configuration()  // reloads take effect within 5 ms
            self.shedder.lagMeasured(now > due ? now - due : .zero, at: now)
            self.arm()
        }
    }

    /// Admits a new request on this loop, or says why not.
    func admit() -> LoadShedder.Decision {
        self.eventLoop.assertInEventLoop()
        return self.shedder.requestArrived()
    }

    /// An admitted request ended.
    func finished() {
        self.eventLoop.assertInEventLoop()
        self.shedder.requestFinished()
    }

    /// The last lag measured (for `/readyz`'s detail and the metric).
    var lastLag: TimeAmount { self.shedder.lastLag }
}

/// The ``EventLoopLoad`` of every loop in the gateway's group, found by the loop a stream runs on.
final class EventLoopLoads: Sendable {
    private let loads: [ObjectIdentifier: EventLoopLoad]

    init(group: any EventLoopGroup, configuration: @escaping @Sendable () -> LoadShedder.Configuration) {
        var loads: [ObjectIdentifier: EventLoopLoad] = [:]
        for loop in group.makeIterator() {
            loads[ObjectIdentifier(loop)] = EventLoopLoad(eventLoop: loop, configuration: configuration)
        }
        self.loads = loads
    }

    /// The load of `eventLoop`, or nil for a loop outside the group (then nothing is shed).
    func load(of eventLoop: any EventLoop) -> EventLoopLoad? { self.loads[ObjectIdentifier(eventLoop)] }

    func start() { self.loads.values.forEach { $0.start() } }
    func stop() { self.loads.values.forEach { $0.stop() } }
}
