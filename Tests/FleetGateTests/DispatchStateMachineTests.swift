import FleetGate
import Testing

typealias Machine = DispatchStateMachine

/// Where a machine is put before the event under test.
enum Setup: String, CaseIterable, Sendable {
    case idle
    /// Attempt 1 open, no token.
    case awaiting
    /// Attempts 1 and 2 (a hedge) open, no token.
    case hedged
    /// Attempt 1 committed, two tokens delivered.
    case streaming
    /// Attempt 1 lost mid-stream; continuation 2 open.
    case migrating
    /// Attempt 1 finished.
    case finished

    func machine(maxAttempts: Int = 3, maxMigrations: Int = 3, continuable: Bool = true) -> Machine {
        var m = Machine(
            configuration: .init(
                maxAttempts: maxAttempts, maxMigrations: maxMigrations, hedging: true, continuable: continuable))
        switch self {
        case .idle: break
        case .awaiting: _ = m.start()
        case .hedged:
            _ = m.start()
            _ = m.hedgeTimerFired(1, budgetAllows: true)
        case .streaming:
            _ = m.start()
            _ = m.firstToken(1)
            _ = m.token(1)
        case .migrating:
            _ = m.start()
            _ = m.firstToken(1)
            _ = m.token(1)
            _ = m.failed(1, .init(retryable: true, label: "car_reset"))
        case .finished:
            _ = m.start()
            _ = m.firstToken(1)
            _ = m.finished(1)
        }
        return m
    }
}

/// An event under test.
enum Event: String, CaseIterable, Sendable {
    case start, noCandidate1, noCandidate2, firstToken1, firstToken2, token1, finished1, finished2
    case failed1, failed2, rejected1, hedgeTimer1, hedgeTimerNoBudget, departing1, departingCanFinish1, clientGone

    func apply(_ m: inout Machine) -> Machine.Action {
        switch self {
        case .start: m.start()
        case .noCandidate1: m.noCandidate(1)
        case .noCandidate2: m.noCandidate(2)
        case .firstToken1: m.firstToken(1)
        case .firstToken2: m.firstToken(2)
        case .token1: m.token(1)
        case .finished1: m.finished(1)
        case .finished2: m.finished(2)
        case .failed1: m.failed(1, .init(retryable: true, label: "car_reset"))
        case .failed2: m.failed(2, .init(retryable: true, label: "car_reset"))
        case .rejected1: m.failed(1, .init(retryable: false, label: "status_4xx", status: 400))
        case .hedgeTimer1: m.hedgeTimerFired(1, budgetAllows: true)
        case .hedgeTimerNoBudget: m.hedgeTimerFired(1, budgetAllows: false)
        case .departing1: m.departing(1, canFinish: false)
        case .departingCanFinish1: m.departing(1, canFinish: true)
        case .clientGone: m.clientGone()
        }
    }
}

let open2Retry = Machine.Action.open(.init(attempt: 2, resumeFrom: 0, reason: .retry))
let open2Hedge = Machine.Action.open(.init(attempt: 2, resumeFrom: 0, reason: .hedge))
let open3Retry = Machine.Action.open(.init(attempt: 3, resumeFrom: 0, reason: .retry))
let migrate2 = Machine.Action.migrate(cancel: nil, open: .init(attempt: 2, resumeFrom: 2, reason: .failover))
let migrate3 = Machine.Action.migrate(cancel: nil, open: .init(attempt: 3, resumeFrom: 2, reason: .failover))
let depart2 = Machine.Action.open(.init(attempt: 2, resumeFrom: 2, reason: .departure))
func exhausted(_ label: String) -> Machine.Action {
    .fail(.attemptsExhausted(lastLabel: label), midStream: false, cancel: [])
}

/// Every setup × event: the action, and the phase after it. Rows not listed must return `.none`
/// and leave the phase as it was.
let table: [Setup: [Event: (Machine.Action, Machine.Phase)]] = [
    .idle: [
        .start: (.open(.init(attempt: 1, resumeFrom: 0, reason: .initial)), .awaitingFirstToken),
        .clientGone: (.none, .finished),
    ],
    .awaiting: [
        .noCandidate1: (.fail(.noCapacity, midStream: false, cancel: []), .finished),
        .firstToken1: (.commit(1, sendHead: true, cancel: []), .streaming),
        .finished1: (.attemptFailed(1, Machine.emptyStream), .awaitingFirstToken),  // failed, then retried
        .failed1: (open2Retry, .awaitingFirstToken),
        .rejected1: (.fail(.rejected(status: 400), midStream: false, cancel: []), .finished),
        .hedgeTimer1: (open2Hedge, .awaitingFirstToken),
        .departing1: (.attemptFailed(1, Machine.departingFailure), .awaitingFirstToken),
        .clientGone: (.cancel([1]), .finished),
    ],
    .hedged: [
        .noCandidate2: (.none, .awaitingFirstToken),
        .firstToken1: (.commit(1, sendHead: true, cancel: [2]), .streaming),
        .firstToken2: (.commit(2, sendHead: true, cancel: [1]), .streaming),
        .finished1: (.attemptFailed(1, Machine.emptyStream), .awaitingFirstToken),
        .finished2: (.attemptFailed(2, Machine.emptyStream), .awaitingFirstToken),
        .failed1: (.none, .awaitingFirstToken),
        .failed2: (.none, .awaitingFirstToken),
        .rejected1: (.none, .awaitingFirstToken),
        .departing1: (.attemptFailed(1, Machine.departingFailure), .awaitingFirstToken),
        .clientGone: (.cancel([1, 2]), .finished),
    ],
    .streaming: [
        .token1: (.forward, .streaming),
        .firstToken1: (.forward, .streaming),
        .finished1: (.finish(cancel: []), .finished),
        .failed1: (migrate2, .migrating),
        .rejected1: (migrate2, .migrating),
        .departing1: (depart2, .streaming),
        .clientGone: (.cancel([1]), .finished),
    ],
    .migrating: [
        .noCandidate2: (
            // The failure that lost the stream, not the search that found nobody to continue it.
            .fail(.noContinuationCandidate(lastLabel: "car_reset"), midStream: true, cancel: []), .finished
        ),
        .firstToken2: (.commit(2, sendHead: false, cancel: []), .streaming),
        .finished2: (.attemptFailed(2, Machine.emptyStream), .migrating),  // lost too
        .failed2: (migrate3, .migrating),
        .clientGone: (.cancel([2]), .finished),
    ],
    .finished: [:],
]

@Suite("DispatchStateMachine")
struct DispatchStateMachineTests {
    @Test(
        "Every state × event gives the tabled action and phase",
        arguments: Setup.allCases, Event.allCases)
    func stateTimesEvent(setup: Setup, event: Event) {
        var m = setup.machine()
        let before = m.phase
        let action = event.apply(&m)
        if let (expected, phase) = table[setup]?[event] {
            #expect(action == expected, "\(setup) × \(event)")
            #expect(m.phase == phase, "\(setup) × \(event)")
        } else {
            #expect(action == .none, "\(setup) × \(event) should be ignored")
            #expect(m.phase == before, "\(setup) × \(event) should not move")
        }
    }

    @Test("A retry that finds no candidate fails with the failure that asked for it, not 'no_candidate'")
    func retryFindsNobody() {
        var m = Setup.awaiting.machine()
        #expect(m.failed(1, .init(retryable: true, label: "central_malformed_answer")) == open2Retry)
        #expect(m.lastFailure == "central_malformed_answer")
        #expect(m.noCandidate(2) == exhausted("central_malformed_answer"))
        // A first attempt with nobody to run it: no capacity, whatever came before.
        var first = Setup.idle.machine()
        _ = first.start()
        #expect(first.noCandidate(1) == .fail(.noCapacity, midStream: false, cancel: []))
    }

    @Test("An attempt that ends without a token is handed back as failed; its failure then retries or continues")
    func emptyStreamIsAFailure() {
        var awaiting = Setup.awaiting.machine()
        #expect(awaiting.finished(1) == .attemptFailed(1, Machine.emptyStream))
        #expect(awaiting.failed(1, Machine.emptyStream) == open2Retry)
        #expect(awaiting.lastFailure == "empty_stream")
        var migrating = Setup.migrating.machine()
        #expect(migrating.finished(2) == .attemptFailed(2, Machine.emptyStream))
        #expect(migrating.failed(2, Machine.emptyStream) == migrate3)
        // A departure's continuation that ends empty: the departing car streams on.
        var streaming = Setup.streaming.machine()
        #expect(streaming.departing(1, canFinish: false) == depart2)
        #expect(streaming.finished(2) == .attemptFailed(2, Machine.emptyStream))
        #expect(streaming.failed(2, Machine.emptyStream) == .none)
        #expect(streaming.committed == 1 && streaming.phase == .streaming)
        #expect(streaming.finished(1) == .finish(cancel: []))
        // A car leaving before its first token: failed through the adapter too, then retried.
        var departing = Setup.awaiting.machine()
        #expect(departing.departing(1, canFinish: false) == .attemptFailed(1, Machine.departingFailure))
        #expect(departing.failed(1, Machine.departingFailure) == open2Retry)
    }

    @Test("The table covers every setup")
    func tableSize() {
        #expect(Setup.allCases.count * Event.allCases.count == 96)
        #expect(table.values.map(\.count).reduce(0, +) >= 30)
    }

    @Test("A run of forwarded tokens counts as many tokens, only for the committed attempt while it streams")
    func forwardedRun() {
        for setup in Setup.allCases {
            var m = setup.machine()
            var byToken = setup.machine()
            for attempt in [1, 2] {
                let forwards = m.forwards(attempt)
                #expect(forwards == (setup == .streaming && attempt == 1), "\(setup) \(attempt)")
                // forwards answers what token(_:) would: .forward, and nothing else changes.
                #expect((byToken.token(attempt) == .forward) == forwards, "\(setup) \(attempt)")
                if forwards { for _ in 0..<4 { _ = byToken.token(attempt) } }
                m.forwarded(5, of: attempt)
                #expect(m.delivered == byToken.delivered && m.phase == byToken.phase, "\(setup) \(attempt)")
                #expect(m.committed == byToken.committed, "\(setup) \(attempt)")
            }
        }
        var m = Setup.streaming.machine()
        m.forwarded(30, of: 1)
        #expect(m.delivered == 32)
    }

    @Test("Retries stop at the attempt bound and report the last failure")
    func retryBound() {
        var m = Machine(configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: false, continuable: true))
        #expect(m.start() == .open(.init(attempt: 1, resumeFrom: 0, reason: .initial)))
        #expect(m.failed(1, .init(retryable: true, label: "refused")) == open2Retry)
        #expect(m.failed(2, .init(retryable: true, label: "refused")) == open3Retry)
        #expect(m.failed(3, .init(retryable: true, label: "first_token_timeout")) == exhausted("first_token_timeout"))
        #expect(m.phase == .finished)
        #expect(m.failed(3, .init(retryable: true, label: "late")) == .none)
    }

    @Test("A hedge is opened once, only with budget and only while the attempt is alone")
    func hedgeRules() {
        var m = Setup.awaiting.machine()
        #expect(m.hedgeTimerFired(1, budgetAllows: false) == .none)
        #expect(m.hedgeTimerFired(1, budgetAllows: true) == open2Hedge)
        #expect(m.hedgeTimerFired(1, budgetAllows: true) == .none)
        #expect(m.hedged)
        var off = Machine(configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: false, continuable: true))
        _ = off.start()
        #expect(off.hedgeTimerFired(1, budgetAllows: true) == .none)
        var bound = Setup.awaiting.machine(maxAttempts: 1)
        #expect(bound.hedgeTimerFired(1, budgetAllows: true) == .none)
    }

    @Test("Race: both hedged attempts produce a first token in the same tick; the second is ignored")
    func firstTokensInOneTick() {
        var m = Setup.hedged.machine()
        #expect(m.firstToken(2) == .commit(2, sendHead: true, cancel: [1]))
        #expect(m.firstToken(1) == .none)
        #expect(m.token(1) == .none)
        #expect(m.token(2) == .forward)
        #expect(m.committed == 2)
        #expect(m.delivered == 2)
    }

    @Test("Race: the client leaves during a retry; the late events of the cancelled attempt are ignored")
    func clientLeavesDuringRetry() {
        var m = Setup.awaiting.machine()
        #expect(m.failed(1, .init(retryable: true, label: "refused")) == open2Retry)
        #expect(m.clientGone() == .cancel([2]))
        #expect(m.firstToken(2) == .none)
        #expect(m.failed(2, .init(retryable: true, label: "cancelled")) == .none)
        #expect(m.clientGone() == .none)
    }

    @Test("Race: a failure after the finish changes nothing")
    func failureAfterFinish() {
        var m = Setup.streaming.machine()
        #expect(m.finished(1) == .finish(cancel: []))
        #expect(m.failed(1, .init(retryable: true, label: "car_reset")) == .none)
        #expect(m.phase == .finished)
    }

    @Test("Mid-stream failover resumes from the delivered tokens, up to the migration bound")
    func migrationBound() {
        var m = Setup.streaming.machine(maxMigrations: 2)
        #expect(m.failed(1, .init(retryable: true, label: "ping_timeout")) == migrate2)
        #expect(m.firstToken(2) == .commit(2, sendHead: false, cancel: []))
        #expect(m.token(2) == .forward)
        let third = m.failed(2, .init(retryable: true, label: "car_reset"))
        #expect(third == .migrate(cancel: nil, open: .init(attempt: 3, resumeFrom: 4, reason: .failover)))
        #expect(
            m.failed(3, .init(retryable: true, label: "car_reset"))
                == .fail(.migrationLimit(lastLabel: "car_reset"), midStream: true, cancel: []))
    }

    @Test("A request that cannot be continued ends with the SSE error when its car is lost")
    func notContinuable() {
        var m = Setup.streaming.machine(continuable: false)
        #expect(
            m.failed(1, .init(retryable: true, label: "car_reset"))
                == .fail(.notContinuable(lastLabel: "car_reset"), midStream: true, cancel: []))
    }

    /// A `stream: false` client has heard nothing when its answer is lost: rather than an error, the
    /// answer starts again from nothing, once (note 19: a car's text then a tool call was a 502).
    @Test("stream: false and not continuable: the lost answer starts again from nothing, once")
    func restartNotContinuable() {
        var m = Machine(
            configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: true, continuable: false, restartable: true)
        )
        _ = m.start()
        #expect(m.firstToken(1) == .commit(1, sendHead: true, cancel: []))
        #expect(m.token(1) == .forward)
        #expect(
            m.failed(1, .init(retryable: true, label: "runtime_tool_call"))
                == .open(.init(attempt: 2, resumeFrom: 0, reason: .restart)))
        #expect(m.phase == .awaitingFirstToken && m.committed == nil && m.delivered == 0 && m.restarts == 1)
        // Before its first token it fails like any first attempt: retried while attempts are left.
        #expect(
            m.failed(2, .init(retryable: true, label: "car_reset"))
                == .open(.init(attempt: 3, resumeFrom: 0, reason: .retry)))
        // Nothing was sent: the answer that now starts is the first the client will get.
        #expect(m.firstToken(3) == .commit(3, sendHead: true, cancel: []))
        // A second lost answer ends the request: one restart.
        #expect(
            m.failed(3, .init(retryable: true, label: "car_reset"))
                == .fail(.notContinuable(lastLabel: "car_reset"), midStream: true, cancel: []))
        // Not for a failure another upstream would repeat (an answer past the bound).
        var bound = Machine(
            configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: true, continuable: false, restartable: true)
        )
        _ = bound.start()
        _ = bound.firstToken(1)
        #expect(
            bound.failed(1, .init(retryable: false, label: "answer_too_large"))
                == .fail(.notContinuable(lastLabel: "answer_too_large"), midStream: true, cancel: []))
    }

    @Test("stream: false lost with only thinking delivered: not continued (it would think twice), started again")
    func restartWhenOnlyThinking() {
        var m = Machine(
            configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: true, continuable: true, restartable: true))
        _ = m.start()
        _ = m.firstToken(1)
        #expect(
            m.failed(1, .init(retryable: true, label: "car_reset"), continuable: false)
                == .open(.init(attempt: 2, resumeFrom: 0, reason: .restart)))
        #expect(m.migrations == 0)
    }

    @Test("stream: false: continued first; with nobody to continue on, started again from nothing")
    func restartAfterNoContinuation() {
        var m = Machine(
            configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: true, continuable: true, restartable: true))
        _ = m.start()
        _ = m.firstToken(1)
        _ = m.token(1)
        #expect(m.failed(1, .init(retryable: true, label: "car_reset")) == migrate2)
        #expect(m.noCandidate(2) == .open(.init(attempt: 3, resumeFrom: 0, reason: .restart)))
        // The continuation never ran: not a migration, not an attempt the client is told of.
        #expect(m.migrations == 0 && m.attemptsRun == 2)
        #expect(m.firstToken(3) == .commit(3, sendHead: true, cancel: []))
        #expect(m.finished(3) == .finish(cancel: []))
        // A lost answer whose failure another upstream would repeat is not started again.
        var bound = Machine(
            configuration: .init(maxAttempts: 3, maxMigrations: 3, hedging: true, continuable: true, restartable: true))
        _ = bound.start()
        _ = bound.firstToken(1)
        _ = bound.failed(1, .init(retryable: false, label: "answer_too_large"))
        #expect(
            bound.noCandidate(2)
                == .fail(.noContinuationCandidate(lastLabel: "answer_too_large"), midStream: true, cancel: []))
        // A streamed request (not restartable) fails there, as before.
        var streamed = Setup.migrating.machine()
        #expect(
            streamed.noCandidate(2)
                == .fail(.noContinuationCandidate(lastLabel: "car_reset"), midStream: true, cancel: []))
    }

    @Test("Departure: the continuation takes over at its first token; the departing car is cancelled then")
    func departureTakeover() {
        var m = Setup.streaming.machine()
        #expect(m.departing(1, canFinish: false) == depart2)
        #expect(m.departing(1, canFinish: false) == .none)  // one continuation at a time
        #expect(m.token(1) == .forward)  // the departing car streams on meanwhile
        #expect(m.firstToken(2) == .commit(2, sendHead: false, cancel: [1]))
        #expect(m.token(1) == .none)
        #expect(m.finished(2) == .finish(cancel: []))
    }

    @Test("Departure: if the departing car finishes first, the unused continuation is cancelled")
    func departureFinishesFirst() {
        var m = Setup.streaming.machine()
        _ = m.departing(1, canFinish: false)
        #expect(m.finished(1) == .finish(cancel: [2]))
    }

    @Test("Departure: if the departing car dies first, its running continuation takes over")
    func departingCarDies() {
        var m = Setup.streaming.machine()
        _ = m.departing(1, canFinish: false)
        #expect(m.failed(1, .init(retryable: true, label: "car_reset")) == .none)
        #expect(m.phase == .migrating)
        #expect(m.firstToken(2) == .commit(2, sendHead: false, cancel: []))
        #expect(m.migrations == 1)
    }

    @Test("Departure: a continuation that finds no car leaves the departing car streaming")
    func departureWithoutCandidate() {
        var m = Setup.streaming.machine()
        _ = m.departing(1, canFinish: false)
        #expect(m.noCandidate(2) == .none)
        #expect(m.phase == .streaming)
        #expect(m.token(1) == .forward)
    }

    @Test(
        "Departure: asked again after finding no slot (the adapter's wait), the continuation resumes from what the client has then; a car that finishes meanwhile moved nothing"
    )
    func departureAskedAgain() {
        var m = Setup.streaming.machine()
        #expect(m.departing(1, canFinish: false) == depart2)
        #expect(m.noCandidate(2) == .none)  // the zone is busy: the adapter waits, the departing car streams on
        #expect(m.token(1) == .forward)
        #expect(m.token(1) == .forward)
        #expect(m.departing(1, canFinish: false) == .open(.init(attempt: 3, resumeFrom: 4, reason: .departure)))
        #expect(m.firstToken(3) == .commit(3, sendHead: false, cancel: [1]))
        #expect(m.migrations == 1 && m.attemptsRun == 2)
        // helper-116: the car finishes while its continuation waits for a slot: one attempt ran, nothing moved.
        var finished = Setup.streaming.machine()
        _ = finished.departing(1, canFinish: false)
        _ = finished.noCandidate(2)
        #expect(finished.token(1) == .forward)
        #expect(finished.finished(1) == .finish(cancel: []))
        #expect(finished.migrations == 0 && finished.attemptsRun == 1)
        // The car leaves while it waits: a failover from what the client has, as for any lost car.
        var lost = Setup.streaming.machine()
        _ = lost.departing(1, canFinish: false)
        _ = lost.noCandidate(2)
        #expect(
            lost.failed(1, .init(retryable: true, label: "car_reset"))
                == .migrate(cancel: nil, open: .init(attempt: 3, resumeFrom: 2, reason: .failover)))
        #expect(lost.migrations == 1)
    }

    @Test("Every attempt can fail only once and must be open to fail")
    func unknownAttempts() {
        var m = Setup.awaiting.machine()
        #expect(m.failed(7, .init(retryable: true, label: "x")) == .none)
        #expect(m.firstToken(7) == .none)
        #expect(m.noCandidate(7) == .none)
        #expect(m.phase == .awaitingFirstToken)
    }
}
