public import FleetProtocol
public import NIOCore
import Synchronization

/// The car's live state, shared by the status stream, the slot accounting and the state-file watcher.
public final class AgentState: Sendable {
    private struct State {
        var vehicle: VehicleState
        var slotsInUse = 0
        var draining: (reason: String, seconds: Int)?
        var subscribers: [Int: @Sendable (StatusMessage) -> Void] = [:]
        var nextID = 0
        var jobs: [String] = []
        /// The rates last reported, and when (``RateReportPolicy``).
        var reportedRates: [ModelOffer]?
        var reportedRatesAt = ContinuousClock.now
    }

    /// The last jobs this car ran, by request id (at most 10,000): the car's own record of what it served.
    public var jobLog: [String] { self.state.withLock { $0.jobs } }

    /// Records a job the car started.
    public func recordJob(requestID: String) {
        self.state.withLock { s in
            if s.jobs.count >= 10_000 { s.jobs.removeFirst(1_000) }
            s.jobs.append(requestID)
        }
    }

    /// Concurrent jobs the engine can really run.
    public let slots: Int
    private let state: Mutex<State>

    /// The runtime's failed jobs, for the car's log: one run for the car, whichever tunnel ran them.
    package let jobFailures = JobFailures()

    public init(initial: VehicleState, slots: Int) {
        self.slots = slots
        var vehicle = initial
        vehicle.slotsFree = slots
        self.state = Mutex(State(vehicle: vehicle))
    }

    /// The current state.
    public var vehicle: VehicleState { self.state.withLock { $0.vehicle } }

    /// True once a drain was announced.
    public var isDraining: Bool { self.state.withLock { $0.draining != nil } }

    /// Takes a slot; false when none is free or the car is draining.
    public func acquireSlot() -> Bool {
        self.state.withLock { state in
            guard state.draining == nil, state.slotsInUse < self.slots else { return false }
            state.slotsInUse += 1
            state.vehicle.slotsFree = self.slots - state.slotsInUse
            return true
        }
    }

    /// Returns a slot.
    public func releaseSlot() {
        self.state.withLock { state in
            state.slotsInUse = max(0, state.slotsInUse - 1)
            state.vehicle.slotsFree = self.slots - state.slotsInUse
        }
    }

    /// Jobs running now.
    public var slotsInUse: Int { self.state.withLock { $0.slotsInUse } }

    /// Replaces the telemetry part of the state (plug, charge, link, departure) and tells subscribers.
    public func update(_ body: (inout VehicleState) -> Void) {
        let (message, subscribers) = self.state.withLock {
            state -> (StatusMessage?, [@Sendable (StatusMessage) -> Void]) in
            let before = state.vehicle
            body(&state.vehicle)
            state.vehicle.slotsFree = self.slots - state.slotsInUse
            guard state.vehicle != before else { return (nil, []) }
            return (.state(state.vehicle), Array(state.subscribers.values))
        }
        if let message { subscribers.forEach { $0(message) } }
    }

    /// Tells subscribers the rates the engine measured, in a state message (the gateway's
    /// scheduler takes them as the car's advertised rates).
    /// Only rates that moved are sent (``RateReportPolicy``).
    public func reportRates(_ models: [ModelOffer]) { self.reportRates { models } }

    /// The same, asking for the rates (`models`) only when a report may be due: most jobs end
    /// within ``RateReportPolicy/minimumInterval`` of the last report, and an engine's list is a
    /// lock and a sort (issue #19).
    public func reportRates(_ models: () -> [ModelOffer]) {
        let now = ContinuousClock.now
        let due = self.state.withLock {
            RateReportPolicy.mayReport(reportedBefore: $0.reportedRates != nil, elapsed: now - $0.reportedRatesAt)
        }
        guard due else { return }
        let models = models()
        let report = self.state.withLock { state -> (StatusMessage, [@Sendable (StatusMessage) -> Void])? in
            guard
                RateReportPolicy.shouldReport(
                    models, last: state.reportedRates, elapsed: now - state.reportedRatesAt)
            else { return nil }
            state.reportedRates = models
            state.reportedRatesAt = now
            return (StatusMessage.state(state.vehicle, models: models), Array(state.subscribers.values))
        }
        guard let (message, subscribers) = report else { return }
        subscribers.forEach { $0(message) }
    }

    /// Announces a drain: no new jobs; tells subscribers.
    public func beginDrain(reason: String, seconds: Int) {
        let subscribers = self.state.withLock { state -> [@Sendable (StatusMessage) -> Void] in
            state.draining = (reason, seconds)
            return Array(state.subscribers.values)
        }
        subscribers.forEach { $0(.drain(reason: reason, secondsLeft: seconds)) }
    }

    /// Registers for state and drain messages; returns a token for ``unsubscribe(_:)``.
    public func subscribe(_ body: @escaping @Sendable (StatusMessage) -> Void) -> Int {
        self.state.withLock { state in
            state.nextID += 1
            state.subscribers[state.nextID] = body
            return state.nextID
        }
    }

    /// Whether anyone is subscribed now: on a tunnel, whether the gateway has the status stream open
    /// (the load harness paces its dialling on it: the TLS handshake and the gateway's set-up are done).
    public var hasSubscribers: Bool { self.state.withLock { !$0.subscribers.isEmpty } }

    /// Stops delivering to a subscriber.
    public func unsubscribe(_ id: Int) {
        _ = self.state.withLock { $0.subscribers.removeValue(forKey: id) }
    }
}
