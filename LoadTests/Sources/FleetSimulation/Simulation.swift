import FleetProtocol
import FleetScheduler
import Foundation

/// A discrete-event simulation of a car fleet in virtual time, seeded, without sockets, driving
/// the real ``FleetRegistry``: every decision, slot, telemetry update, PING and outcome goes
/// through the same calls the gateway makes.
public final class Simulation {
    enum Event {
        case arrival
        case prefillDone(job: Int, version: Int)
        case decodeDone(job: Int, version: Int)
        case centralFirstToken(job: Int)
        case centralDone(job: Int)
        case jobFails(job: Int)
        case detect(car: Int)
        case slowdownChange(car: Int)
        case ping(car: Int)
        case depart(car: Int)
        case churn
        case replacement
        case turn(conversation: Int)
        /// Every replica builds its capacity digest and publishes it if it changed (issue #21).
        case publish
    }

    enum Availability { case home, workplace, fastCharge }

    /// A car as it really is (the registry sees only what the gateway could see).
    struct Car {
        var id: CarID?
        var region: String
        var zone: String
        var hardware: HardwareClass
        var slots: Int
        var singleStreamTPS: Double
        var concurrencyFalloff: Double
        var prefillTPS: Double
        var link: LinkType
        var linkMedianMs: Double
        var linkSigma: Double
        var slowdown: Double
        var plugged: Bool
        var availability: Availability
        var departAt: Double = .infinity
        var active: [Int] = []
        var queue: [Int] = []
        var departing = false
        /// Left without notice: its jobs are frozen until the gateway notices (missed PINGs).
        var goneAt: Double?
        /// Share of its jobs that fail.
        var failure: Double
        /// Multi-turn workload: whether its runtime really reuses prefixes, how many conversations
        /// it keeps, and which (conversation → tokens held), least recently used first.
        var cacheWorks = false
        var cacheSequences = 0
        var cache: [(conversation: Int, tokens: Int)] = []
        /// Slot-seconds of jobs in the measured window (per-car utilisation).
        var busySlotSeconds = 0.0
    }

    struct Job {
        var request: Int
        var car: Int  // -1: central
        var dispatch: Lease?
        var prompt: Int
        var output: Int
        var rttMs: Double
        var sentAt: Double
        var decoding = false
        var remaining: Double = 0
        var rate: Double = 0
        var lastUpdate: Double = 0
        var version = 0
        var firstTokenAt: Double?
        var noise: Double
        var done = false
        /// Set when the job will fail (the car resets the stream) at this time.
        var failsAt: Double?
        /// Prompt tokens the car's runtime already held (not prefilled again), and when its prefill began.
        var cached = 0
        var beganAt: Double?
    }

    struct Request {
        var zone: String
        var workload: Int
        var prompt: Int
        var output: Int
        /// What the gateway estimates: body bytes ÷ 4, and `max_tokens` or 256.
        var promptEstimate: Int
        var expectedOutput: Int
        var sloMs: Double
        var arrival: Double
        var measured: Bool
        var firstTokenAt: Double?
        var delivered = 0
        var attempts = 0
        var tried: [CarID] = []
        var finishedAt: Double?
        var failed = false
        var usedCentral = false
        var centralTokens = 0
        /// The replica whose registry serves the request (issue #21): where it arrived, or the
        /// one it was forwarded to.
        var replica = 0
        var forwarded = false
        /// Multi-turn workload: the conversation (-1: none), the turn (1…), its prefix hashes, and
        /// whether the attempt that gave the first token ran on a car holding a prefix of it.
        var conversation = -1
        var turn = 0
        var prefixes: [PrefixChunk] = []
        var hit = false
        var ended = false
    }

    /// One conversation of the multi-turn workload: the true history and the gateway's view of it.
    struct Conversation {
        var zone: String
        var workload: Int
        var turns: Int
        var turn = 0
        /// True tokens of the history so far, and the estimate (bytes ÷ 4) of it.
        var tokens: Int
        var bytes: Double
        var bytesPerToken: Double
        /// Prefix hashes of the history, one per message.
        var chunks: [PrefixChunk] = []
        var nextUser = 0
        var messages = 0
    }

    let parameters: SimulationParameters
    /// One registry per gateway replica (issue #21); car `c` is registered with replica `c % R`.
    let registries: [FleetRegistry]
    var draw: Draw
    var events = EventQueue<Event>()
    var now = 0.0
    var cars: [Car] = []
    /// Per replica: its registry's car ids → car index.
    var carByID: [[CarID: Int]]
    /// The digests other replicas see (the last published), and forwards each replica sent to
    /// each other since that replica's last digest (row: sender, column: target).
    var digests: [CapacityDigest?]
    var forwardsSinceDigest: [[Int]]
    var digestWrites = 0
    var digestBytes = 0
    var forwardedRequests = 0
    var jobs: [Int: Job] = [:]
    var nextJob = 0
    var requests: [Request] = []
    var centralInFlight: [String: Int] = [:]
    var centralQueue: [String: [Int]] = [:]
    var centralCapacity: [String: Int] = [:]
    /// What the simulated gateway has learned about each zone's central capacity.
    var centralEstimate: [String: CentralEstimate] = [:]
    let model: FleetModel
    var arrivalRate = 0.0
    var pendingMeasured = 0
    var arrivalsEnd: Double { self.parameters.warmupSeconds + self.parameters.measuredSeconds }
    // Ground-truth counters.
    var privacyViolations = 0
    var eligibilityViolations = 0
    var decisionNanoseconds: UInt64 = 0
    var decisions = 0
    var predictionErrors: [Double] = []
    var conversations: [Conversation] = []
    var prefillTokens = 0
    var prefillSaved = 0

    public init(_ parameters: SimulationParameters) {
        self.parameters = parameters
        self.model = parameters.set.model
        var predictor = LatencyPredictor()
        predictor.riskAversion = parameters.riskAversion
        predictor.learns = parameters.learning
        for (key, value) in parameters.scorer {
            switch key {
            case "decodeWeight": predictor.decodeWeight = value
            case "prefillContention": predictor.prefillContention = value
            case "fitMargin": predictor.fitMargin = value
            case "learningRate": predictor.learningRate = value
            case "tpotMissPenalty": predictor.tpotMissPenaltyMilliseconds = value
            case "centralByPrediction": predictor.centralByPrediction = value != 0
            case "prefixCreditWeight": predictor.prefixCreditWeight = value
            case "affinity": break
            default: preconditionFailure("unknown scorer setting '\(key)'")
            }
        }
        let replicas = max(1, parameters.replicas)
        self.registries = (0..<replicas).map { i in
            FleetRegistry(
                policy: parameters.policy, predictor: predictor, probes: parameters.probes,
                seed: parameters.seed &* 31 &+ 7 &+ UInt64(i), affinity: PrefixAffinity(enabled: parameters.affinity))
        }
        self.carByID = Array(repeating: [:], count: replicas)
        self.digests = Array(repeating: nil, count: replicas)
        self.forwardsSinceDigest = Array(repeating: Array(repeating: 0, count: replicas), count: replicas)
        self.draw = Draw(seed: parameters.seed)
    }

    // MARK: The fleet

    private func makeCar(initial: Bool) -> Car {
        let p = self.parameters
        let region = self.draw.pick(self.model.regions.map { ($0, $0.share) })
        let hardware: HardwareClass = p.homogeneous ? .hw4 : self.draw.pick(self.model.classMix)
        let link = p.homogeneous ? self.model.links[0] : self.draw.pick(self.model.links.map { ($0, $0.share) })
        let profile = HardwareProfile.of(hardware)
        // The truth's concurrency curve: r(k) = r1 / (1 + β(k − 1)), β set so that all slots busy
        // give the class's aggregate — smooth, unlike the predictor's min(r1, aggregate / k).
        let falloff =
            profile.slots > 1
            ? (profile.decodeTokensPerSecond * Double(profile.slots) / profile.aggregateDecodeTokensPerSecond - 1)
                / Double(profile.slots - 1) : 0
        let availability = self.draw.pick([
            (Availability.fastCharge, Self.fastChargeShare),
            (.home, 0.55), (.workplace, 0.40),
        ])
        var car = Car(
            region: region.region, zone: region.zone, hardware: hardware, slots: profile.slots,
            singleStreamTPS: profile.decodeTokensPerSecond, concurrencyFalloff: falloff,
            prefillTPS: profile.prefillTokensPerSecond, link: link.type, linkMedianMs: link.medianMs,
            linkSigma: link.sigma, slowdown: self.drawSlowdown(),
            plugged: self.draw.uniform() >= Self.unpluggedShare, availability: availability,
            failure: self.draw.uniform() < self.model.flakyShare ? self.model.flakyFailure : self.model.baseFailure)
        if availability == .fastCharge {
            let session = self.draw.uniform(20 * 60, 40 * 60)
            car.departAt = self.now + (initial ? self.draw.uniform(0, session) : session)
        }
        if p.conversations {
            car.cacheWorks = self.draw.uniform() < self.model.conversation.cacheWorksShare
            car.cacheSequences = self.model.conversation.cacheSequences[hardware] ?? 4
        }
        return car
    }

    /// Hidden slowdown (heat, an owner in the cabin): mostly near 1, sometimes 4×. Not in telemetry.
    private func drawSlowdown() -> Double {
        let range = self.draw.pick(self.model.slowdowns.map { ($0.1, $0.0) })
        return self.draw.uniform(range.lowerBound, range.upperBound)
    }

    /// Fast-charge stops: share of the fleet, session 20–40 min, always announced (the navigation knows).
    static let fastChargeShare = 0.05
    /// Connected but not eligible: unplugged under the default policy, or below the charge floor.
    static let unpluggedShare = 0.05
    /// Car-side queue the agents advertise.
    static let queueDepth = 1
    /// Seconds between PINGs (the gateway's keepalive).
    static let pingSeconds = 5.0

    private func connect(_ index: Int) {
        var car = self.cars[index]
        let state = self.telemetry(car)
        let profile = HardwareProfile.of(car.hardware)
        let descriptor = CarDescriptor(
            vehicleID: "sim-\(index)", pseudonym: "p\(index)", region: car.region, zone: car.zone,
            hardware: car.hardware,
            models: [
                ModelOffer(
                    id: SimulationParameters.requestModel, decodeTokensPerSecond: profile.decodeTokensPerSecond,
                    prefillTokensPerSecond: profile.prefillTokensPerSecond)
            ],
            slots: car.slots, queueDepth: Self.queueDepth, policy: OwnerPolicy(),
            // The simulated agents do not state their cache (openai-local's default): the scorer starts
            // every car at the unknown prior (0.5) and learns (the figures in LoadTests/README.md).
            promptCache: nil)
        let id = self.registry(of: index).register(descriptor, state: state, now: self.now).id
        car.id = id
        self.cars[index] = car
        self.carByID[self.replica(of: index)][id] = index
        self.events.push(self.now + self.draw.uniform(0, Self.pingSeconds), .ping(car: index))
        self.events.push(
            self.now + self.draw.exponential(mean: self.model.slowdownChangeSeconds), .slowdownChange(car: index))
        if car.departAt.isFinite { self.events.push(car.departAt, .depart(car: index)) }
    }

    private func telemetry(_ car: Car) -> VehicleState {
        VehicleState(
            pluggedIn: car.plugged, chargePercent: car.plugged ? 80 : 40, link: car.link,
            departingInSeconds: car.departAt.isFinite ? Int(max(0, car.departAt - self.now)) : nil,
            slotsFree: max(0, car.slots - car.active.count))
    }

    private func sampleRTT(_ car: Car) -> Double {
        var rtt = self.draw.lognormal(median: car.linkMedianMs, sigma: car.linkSigma)
        if self.draw.uniform() < self.model.spikeShare {
            rtt *= self.draw.uniform(self.model.spikeFactor.lowerBound, self.model.spikeFactor.upperBound)
        }
        return rtt
    }

    /// Requests per second the connected, eligible fleet sustains with every slot busy, at the
    /// mean hidden slowdown and the workload's mean request.
    func capacity() -> Double {
        var meanPrompt = 0.0
        var meanOutput = 0.0
        for w in self.model.workloads {
            meanPrompt += w.share * w.promptMedian * exp(w.promptSigma * w.promptSigma / 2)
            meanOutput += w.share * w.outputMedian * exp(w.outputSigma * w.outputSigma / 2)
        }
        if self.parameters.conversations {
            // A later turn resends the history: turn k's prompt is the first prompt plus k − 1
            // answers and user messages. Capacity counts every prompt token as prefilled (no cache),
            // so the same load offers the same turns with and without affinity.
            let c = self.model.conversation
            let user = c.userMedian * exp(c.userSigma * c.userSigma / 2)
            let turns = c.turns.map(Double.init)
            let meanTurns = turns.reduce(0, +) / Double(turns.count)
            let meanEarlier = turns.map { $0 * ($0 - 1) / 2 }.reduce(0, +) / Double(turns.count) / meanTurns
            meanPrompt += meanEarlier * (meanOutput + user)
        }
        let meanSlowdown = self.model.slowdowns.reduce(0) {
            $0 + $1.0 * ($1.1.lowerBound + $1.1.upperBound) / 2
        } / self.model.slowdowns.reduce(0) { $0 + $1.0 }
        var total = 0.0
        for car in self.cars where car.id != nil && car.plugged {
            let perStream = car.singleStreamTPS / (1 + car.concurrencyFalloff * Double(car.slots - 1))
            let service = meanPrompt / car.prefillTPS + meanOutput / perStream
            total += Double(car.slots) / (service * meanSlowdown)
        }
        return total
    }

    // MARK: Running

    /// Runs the simulation to the end of the measured window and until every measured request
    /// has finished or failed.
    public func run() -> SimulationResult {
        for i in 0..<self.parameters.cars {
            self.cars.append(self.makeCar(initial: true))
            self.connect(i)
        }
        self.arrivalRate = self.parameters.load * self.capacity()
        var slots: [String: Int] = [:]
        for car in self.cars where car.plugged { slots[car.zone, default: 0] += car.slots }
        for (zone, n) in slots {
            self.centralCapacity[zone] = Int((Double(n) * self.parameters.centralShareOfSlots).rounded())
            self.centralEstimate[zone] = CentralEstimate()
        }
        if self.parameters.conversations {
            // Conversations start at the turn rate ÷ the mean number of turns.
            let turns = self.model.conversation.turns
            self.arrivalRate /= Double(turns.lowerBound + turns.upperBound) / 2
        }
        self.events.push(self.draw.exponential(mean: 1 / self.arrivalRate), .arrival)
        self.scheduleChurn()
        if self.registries.count > 1 { self.events.push(0, .publish) }
        let hardStop = self.arrivalsEnd + 600
        while let (time, event) = self.events.pop() {
            self.now = time
            if time > self.arrivalsEnd && self.pendingMeasured == 0 { break }
            if time > hardStop { break }
            self.handle(event)
        }
        return self.result()
    }

    private func handle(_ event: Event) {
        switch event {
        case .turn(let conversation):
            self.nextTurn(conversation)
        case .publish:
            self.publishDigests()
            if self.now < self.arrivalsEnd {
                self.events.push(self.now + self.parameters.digestIntervalSeconds, .publish)
            }
        case .arrival:
            if self.parameters.conversations { self.startConversation() } else { self.arrive() }
            if self.now < self.arrivalsEnd {
                self.events.push(self.now + self.draw.exponential(mean: 1 / self.arrivalRate), .arrival)
            }
        case .prefillDone(let j, let version):
            guard let job = self.jobs[j], job.version == version, !job.done else { return }
            self.prefillDone(j)
        case .decodeDone(let j, let version):
            guard let job = self.jobs[j], job.version == version, !job.done else { return }
            self.finish(j)
        case .centralFirstToken(let j):
            guard var job = self.jobs[j] else { return }
            job.firstTokenAt = self.now
            self.jobs[j] = job
            if self.requests[job.request].firstTokenAt == nil { self.requests[job.request].firstTokenAt = self.now }
        case .centralDone(let j):
            self.finish(j)
        case .jobFails(let j):
            guard let job = self.jobs[j], !job.done, job.failsAt == self.now else { return }
            self.failJob(j)
        case .detect(let c):
            self.depart(c)
        case .slowdownChange(let c):
            guard self.cars[c].id != nil, self.cars[c].goneAt == nil else { return }
            self.cars[c].slowdown = self.drawSlowdown()
            self.reshare(c)
            self.events.push(
                self.now + self.draw.exponential(mean: self.model.slowdownChangeSeconds), .slowdownChange(car: c))
        case .ping(let c):
            guard let id = self.cars[c].id, self.cars[c].goneAt == nil else { return }
            self.registry(of: c).recordRTT(id, milliseconds: self.sampleRTT(self.cars[c]))
            self.events.push(self.now + Self.pingSeconds, .ping(car: c))
        case .depart(let c):
            self.depart(c)
        case .churn:
            self.churn()
            self.scheduleChurn()
        case .replacement:
            self.cars.append(self.makeCar(initial: false))
            self.connect(self.cars.count - 1)
        }
    }

    private func scheduleChurn() {
        let rate =
            self.parameters.churnPer10Minutes / 600 * Double(self.parameters.cars) * (1 - Self.fastChargeShare)
        guard rate > 0 else { return }
        self.events.push(self.now + self.draw.exponential(mean: 1 / rate), .churn)
    }

    /// A home or workplace car leaves: with notice, it announces 120–600 s ahead; without, it just goes.
    private func churn() {
        for _ in 0..<32 {
            let c = Int(self.draw.uniform() * Double(self.cars.count))
            guard self.cars[c].id != nil, !self.cars[c].departing, self.cars[c].goneAt == nil,
                self.cars[c].availability != .fastCharge
            else {
                continue
            }
            self.cars[c].departing = true
            if self.parameters.departureNotice {
                self.cars[c].departAt = self.now + self.draw.uniform(120, 600)
                self.registry(of: c).update(self.cars[c].id!, state: self.telemetry(self.cars[c]), now: self.now)
                self.events.push(self.cars[c].departAt, .depart(car: c))
            } else {
                self.vanish(c)
            }
            return
        }
    }

    /// A car drops off without notice: its streams stop, and the gateway notices only after
    /// missed PINGs — until then it still routes to it, and those jobs wait too.
    private func vanish(_ c: Int) {
        self.cars[c].goneAt = self.now
        for j in self.cars[c].active {
            guard var job = self.jobs[j] else { continue }
            if job.decoding {
                job.remaining = max(0, job.remaining - job.rate * (self.now - job.lastUpdate))
                job.lastUpdate = self.now
                job.rate = 0
            }
            job.version += 1  // its prefill or decode never completes
            job.failsAt = nil
            self.jobs[j] = job
        }
        for j in self.cars[c].queue { self.jobs[j]?.failsAt = nil }
        let delay = self.draw.uniform(self.model.detectionSeconds.lowerBound, self.model.detectionSeconds.upperBound)
        self.events.push(self.now + delay, .detect(car: c))
    }

    private func depart(_ c: Int) {
        guard let id = self.cars[c].id else { return }
        self.registry(of: c).remove(id, now: self.now)
        self.carByID[self.replica(of: c)].removeValue(forKey: id)
        self.cars[c].id = nil
        let orphans = self.cars[c].active + self.cars[c].queue
        self.cars[c].active = []
        self.cars[c].queue = []
        for j in orphans {
            guard var job = self.jobs[j] else { continue }
            job.done = true
            self.jobs[j] = nil
            if job.decoding {
                let produced = job.output - Int(max(0, job.remaining - job.rate * (self.now - job.lastUpdate)))
                self.requests[job.request].delivered += max(0, produced)
            }
            self.requests[job.request].tried.append(id)
            self.dispatch(job.request)
        }
        self.cars[c].goneAt = nil
        self.events.push(self.now + self.draw.uniform(0, 60), .replacement)
    }

    // MARK: Requests

    private func arrive() {
        let region = self.draw.pick(self.model.regions.map { ($0, $0.share) })
        let w = self.draw.pick(self.model.workloads.indices.map { ($0, self.model.workloads[$0].share) })
        let workload = self.model.workloads[w]
        let prompt = Int(
            min(16_000, max(16, self.draw.lognormal(median: workload.promptMedian, sigma: workload.promptSigma))))
        let output = Int(
            min(1_024, max(8, self.draw.lognormal(median: workload.outputMedian, sigma: workload.outputSigma))))
        // What the gateway sees: the body's size (the prompt's bytes plus the JSON around it) and
        // the client's `max_tokens`, when it sets one (at least the output, often a round figure above).
        let bytes =
            Double(prompt) * self.draw.lognormal(median: self.model.bytesPerToken, sigma: self.model.bytesPerTokenSigma)
            + self.draw.uniform(self.model.overheadBytes.lowerBound, self.model.overheadBytes.upperBound)
        var promptEstimate = max(1, Int(bytes) / 4)
        var expectedOutput = 256
        if self.draw.uniform() < self.model.maxTokensShare {
            let round = [64, 128, 256, 512, 1_024].first { $0 >= output } ?? 1_024
            expectedOutput = self.draw.uniform() < 0.5 ? round : min(1_024, 2 * round)
        }
        if self.parameters.exactEstimates {
            promptEstimate = prompt
            expectedOutput = Int(workload.outputMedian)
        }
        let measured = self.now >= self.parameters.warmupSeconds && self.now < self.arrivalsEnd
        var request = Request(
            zone: region.zone, workload: w, prompt: prompt, output: output, promptEstimate: promptEstimate,
            expectedOutput: expectedOutput, sloMs: workload.ttftObjectiveMs, arrival: self.now,
            measured: measured)
        // The L4 balancer: any replica, whatever its cars.
        if self.registries.count > 1 { request.replica = Int(self.draw.uniform() * Double(self.registries.count)) }
        self.requests.append(request)
        if measured { self.pendingMeasured += 1 }
        self.dispatch(self.requests.count - 1)
    }

    /// Attempts per request at most (the gateway's `maxAttempts`).
    static let maxAttempts = 4

    private func centralHasRoom(_ zone: String) -> Bool {
        let capacity = self.centralCapacity[zone, default: 0]
        guard capacity > 0 else { return false }
        let queue = max(1, Int(Double(capacity) * self.model.centralQueueShare))
        return self.centralInFlight[zone, default: 0] + self.centralQueue[zone, default: []].count < capacity + queue
    }

    private func dispatch(_ r: Int) {
        var request = self.requests[r]
        let remaining = request.output - request.delivered
        guard remaining > 0 else { return self.complete(r) }
        guard request.attempts < Self.maxAttempts else { return self.fail(r) }
        request.attempts += 1
        self.requests[r] = request
        // A continuation carries the delivered text: the gateway's estimate grows by it.
        let profile = RequestProfile(
            model: SimulationParameters.requestModel, zone: request.zone,
            promptTokens: request.promptEstimate + request.delivered,
            expectedOutputTokens: max(1, request.expectedOutput - request.delivered),
            ttftObjectiveMilliseconds: request.sloMs,
            tpotObjectiveMilliseconds: SimulationParameters.tpotObjectiveMs, prefixes: request.prefixes)
        let hasRoom = self.centralHasRoom(request.zone)
        let central = self.centralEstimate[request.zone].map {
            $0.option(promptTokens: profile.promptTokens, hasRoom: hasRoom)
        }
        let start = Self.threadCPUNanoseconds()
        var decision = self.registries[request.replica].decide(
            profile, central: central, excluding: request.tried, now: self.now)
        self.decisionNanoseconds += Self.threadCPUNanoseconds() - start
        self.decisions += 1
        if request.attempts == 1,
            let target = self.forwardTarget(request, localHasCar: decision.choices.contains { $0.car != nil })
        {
            // Issue #21: one hop to the replica whose digest promises better; it decides on its own
            // cars. Its answer when it has nothing (503) is retried at home, as the gateway does.
            self.forwardsSinceDigest[request.replica][target] += 1
            let remote = self.registries[target].decide(profile, central: central, excluding: [], now: self.now)
            request.forwarded = true
            if request.measured { self.forwardedRequests += 1 }
            if !remote.choices.isEmpty {
                request.replica = target
                decision = remote
            }
            self.requests[r] = request
        }
        let registry = self.registries[request.replica]
        let prompt = request.prompt + request.delivered
        for choice in decision.choices {
            switch choice.route {
            case .central:
                guard hasRoom else { continue }
                return self.startCentral(r, prompt: prompt, output: remaining)
            case .car(let id):
                guard let c = self.carByID[request.replica][id], let d = registry.acquire(choice, for: profile, now: self.now)
                else {
                    continue
                }
                return self.startOnCar(r, car: c, dispatch: d, prompt: prompt, output: remaining)
            }
        }
        self.fail(r)
    }

    /// Central: a zone's streams, then a short FIFO queue; each job's prefill and decode slow
    /// with the share of streams busy when it starts, with per-job noise and rare spikes.
    private func startCentral(_ r: Int, prompt: Int, output: Int) {
        let zone = self.requests[r].zone
        self.requests[r].usedCentral = true
        self.requests[r].centralTokens += prompt + output
        let j = self.newJob(
            Job(
                request: r, car: -1, prompt: prompt, output: output,
                rttMs: self.draw.lognormal(median: self.model.centralRTTMs, sigma: 0.3), sentAt: self.now,
                noise: self.draw.lognormal(median: 1, sigma: self.model.centralNoiseSigma)))
        if self.centralInFlight[zone, default: 0] < self.centralCapacity[zone, default: 0] {
            self.beginCentral(j)
        } else {
            self.centralQueue[zone, default: []].append(j)
        }
    }

    private func beginCentral(_ j: Int) {
        let job = self.jobs[j]!
        let zone = self.requests[job.request].zone
        let busy =
            Double(self.centralInFlight[zone, default: 0]) / Double(max(1, self.centralCapacity[zone, default: 1]))
        self.centralInFlight[zone, default: 0] += 1
        let slow = 1 + self.model.centralLoadSlowdown * busy
        var prefill = Double(job.prompt) / self.model.centralPrefillTPS * slow * job.noise
        if self.draw.uniform() < 0.01 { prefill *= self.draw.uniform(3, 8) }
        let first = self.now + job.rttMs / 1_000 + prefill
        let tpot = slow / self.model.centralDecodeTPS * self.draw.lognormal(median: 1, sigma: 0.1)
        self.events.push(first, .centralFirstToken(job: j))
        self.events.push(first + Double(max(0, job.output - 1)) * tpot, .centralDone(job: j))
    }

    private func newJob(_ job: Job) -> Int {
        let j = self.nextJob
        self.nextJob += 1
        self.jobs[j] = job
        return j
    }

    private func startOnCar(_ r: Int, car c: Int, dispatch: Lease, prompt: Int, output: Int) {
        let car = self.cars[c]
        if car.zone != self.requests[r].zone { self.privacyViolations += 1 }
        if !car.plugged { self.eligibilityViolations += 1 }
        let j = self.newJob(
            Job(
                request: r, car: c, dispatch: dispatch, prompt: prompt, output: output, rttMs: self.sampleRTT(car),
                sentAt: self.now, noise: self.draw.lognormal(median: 1, sigma: 0.2)))
        if car.goneAt != nil {
            // Gone, not yet noticed: the stream waits until the gateway gives up on the car.
            self.cars[c].queue.append(j)
            return
        }
        if self.draw.uniform() < car.failure {
            let at = self.now + self.draw.uniform(0.2, 4)
            self.jobs[j]!.failsAt = at
            self.events.push(at, .jobFails(job: j))
        }
        if car.active.count < car.slots {
            self.beginPrefill(j)
        } else {
            self.cars[c].queue.append(j)
        }
    }

    /// Prefill competes with the streams decoding on the same chip (15 % each — the predictor
    /// does not model this).
    private func beginPrefill(_ j: Int) {
        var job = self.jobs[j]!
        let car = self.cars[job.car]
        let decoding = car.active.reduce(0) { $0 + (self.jobs[$1]?.decoding == true ? 1 : 0) }
        let rate = car.prefillTPS / car.slowdown / (1 + 0.15 * Double(decoding))
        job.version += 1
        let conversation = self.requests[job.request].conversation
        if conversation >= 0, car.cacheWorks, let held = car.cache.first(where: { $0.conversation == conversation }) {
            job.cached = min(held.tokens, job.prompt - 1)
        }
        job.beganAt = self.now
        self.jobs[j] = job
        self.cars[job.car].active.append(j)
        self.events.push(
            self.now + Double(job.prompt - job.cached) / rate * job.noise, .prefillDone(job: j, version: job.version))
        self.reshare(job.car)
    }

    private func prefillDone(_ j: Int) {
        var job = self.jobs[j]!
        job.decoding = true
        // The first token reaches the gateway one RTT after the request left it, plus the car's time.
        job.firstTokenAt = self.now + job.rttMs / 1_000
        job.remaining = Double(job.output - 1)
        job.lastUpdate = self.now
        job.rate = 0
        self.jobs[j] = job
        if self.requests[job.request].firstTokenAt == nil {
            self.requests[job.request].firstTokenAt = job.firstTokenAt
            self.requests[job.request].hit = job.cached > 0
        }
        // The gateway ends a new car's slow start at its first token (one RTT from now; told now).
        if let d = job.dispatch { self.registry(of: job.car).firstToken(d) }
        if self.requests[job.request].measured {
            self.prefillTokens += job.prompt
            self.prefillSaved += job.cached
        }
        // The runtime now holds the prompt (and, once it has answered, the answer too).
        self.keep(job.car, self.requests[job.request].conversation, tokens: job.prompt)
        if job.remaining <= 0 { return self.finish(j) }
        self.reshare(job.car)
    }

    /// Processor sharing: every decoding stream's rate follows the car's current concurrency and slowdown.
    private func reshare(_ c: Int) {
        let car = self.cars[c]
        let k = Double(max(1, car.active.count))
        let perStream = car.singleStreamTPS / (1 + car.concurrencyFalloff * (k - 1)) / car.slowdown
        for j in car.active {
            guard var job = self.jobs[j], job.decoding else { continue }
            job.remaining = max(0, job.remaining - job.rate * (self.now - job.lastUpdate))
            job.lastUpdate = self.now
            job.rate = perStream / job.noise
            job.version += 1
            self.jobs[j] = job
            self.events.push(self.now + job.remaining / job.rate, .decodeDone(job: j, version: job.version))
        }
    }

    private func finish(_ j: Int) {
        guard var job = self.jobs.removeValue(forKey: j) else { return }
        job.done = true
        let r = job.request
        let delivered = self.now + (job.car >= 0 ? job.rttMs / 2_000 : 0)
        if job.car < 0 {
            let zone = self.requests[r].zone
            self.centralInFlight[zone, default: 1] -= 1
            if let first = job.firstTokenAt {
                self.centralEstimate[zone]?.observe(
                    Outcome(
                        ttftMilliseconds: (first - job.sentAt) * 1_000,
                        tpotMilliseconds: job.output > 1
                            ? (self.now - first) * 1_000 / Double(job.output - 1) : nil,
                        promptTokens: job.prompt, outputTokens: job.output, succeeded: true),
                    promptTokens: job.prompt)
            }
            if var queue = self.centralQueue[zone], !queue.isEmpty {
                let next = queue.removeFirst()
                self.centralQueue[zone] = queue
                self.beginCentral(next)
            }
        } else {
            let c = job.car
            self.cars[c].active.removeAll { $0 == j }
            self.keep(c, self.requests[r].conversation, tokens: job.prompt + job.output)
            self.countBusy(c, job)
            if let d = job.dispatch, let first = job.firstTokenAt {
                let ttft = (first - job.sentAt) * 1_000
                let tpot = job.output > 1 ? (delivered - first) * 1_000 / Double(job.output - 1) : nil
                self.registry(of: c).finish(
                    d,
                    Outcome(
                        ttftMilliseconds: ttft, tpotMilliseconds: tpot, promptTokens: job.prompt,
                        outputTokens: job.output,
                        succeeded: true), now: self.now)
                if self.requests[r].measured && self.requests[r].attempts == 1 {
                    self.predictionErrors.append(d.predictedTTFTMilliseconds / max(1, ttft))
                }
            }
            if !self.cars[c].queue.isEmpty {
                self.beginPrefill(self.cars[c].queue.removeFirst())
            } else {
                self.reshare(c)
            }
        }
        self.requests[r].delivered += job.output
        self.requests[r].finishedAt = delivered
        self.complete(r)
    }

    /// The car resets the stream: the gateway reports the failure (back-off, penalties) and
    /// continues the request elsewhere from the tokens already delivered.
    private func failJob(_ j: Int) {
        guard var job = self.jobs.removeValue(forKey: j), job.car >= 0, let lease = job.dispatch else { return }
        job.done = true
        let c = job.car
        var produced = 0
        if job.decoding {
            produced = max(0, job.output - Int(max(0, job.remaining - job.rate * (self.now - job.lastUpdate))))
        }
        let wasActive = self.cars[c].active.contains(j)
        self.countBusy(c, job)
        self.cars[c].active.removeAll { $0 == j }
        self.cars[c].queue.removeAll { $0 == j }
        let seen = job.firstTokenAt.map { $0 <= self.now } ?? false
        self.registry(of: c).finish(
            lease,
            Outcome(
                ttftMilliseconds: seen ? (job.firstTokenAt! - job.sentAt) * 1_000 : nil, tpotMilliseconds: nil,
                outputTokens: seen ? produced : 0, succeeded: false), now: self.now)
        self.requests[job.request].delivered += seen ? produced : 0
        if let id = self.cars[c].id { self.requests[job.request].tried.append(id) }
        if wasActive {
            if !self.cars[c].queue.isEmpty { self.beginPrefill(self.cars[c].queue.removeFirst()) } else { self.reshare(c) }
        }
        self.dispatch(job.request)
    }

    private func complete(_ r: Int) {
        if self.requests[r].finishedAt == nil { self.requests[r].finishedAt = self.now }
        if self.requests[r].measured { self.pendingMeasured -= 1 }
        self.turnEnded(r)
    }

    private func fail(_ r: Int) {
        self.requests[r].failed = true
        if self.requests[r].measured { self.pendingMeasured -= 1 }
        self.turnEnded(r)
    }

    // MARK: The multi-turn workload

    /// A conversation starts: its class, zone, length and first prompt (the class's prompt).
    private func startConversation() {
        let region = self.draw.pick(self.model.regions.map { ($0, $0.share) })
        let w = self.draw.pick(self.model.workloads.indices.map { ($0, self.model.workloads[$0].share) })
        let workload = self.model.workloads[w]
        let c = self.model.conversation
        let turns = c.turns.lowerBound + Int(self.draw.uniform() * Double(c.turns.count))
        let first = Int(min(4_000, max(16, self.draw.lognormal(median: workload.promptMedian, sigma: workload.promptSigma))))
        let bytesPerToken = self.draw.lognormal(median: self.model.bytesPerToken, sigma: self.model.bytesPerTokenSigma)
        self.conversations.append(
            Conversation(
                zone: region.zone, workload: w, turns: turns, tokens: 0, bytes: 0, bytesPerToken: bytesPerToken,
                nextUser: first))
        self.nextTurn(self.conversations.count - 1)
    }

    /// A conversation's next turn: its history plus a new user message, sent as one request.
    private func nextTurn(_ id: Int) {
        var conversation = self.conversations[id]
        conversation.turn += 1
        self.append(&conversation, id: id, tokens: conversation.nextUser)
        let workload = self.model.workloads[conversation.workload]
        let output = Int(
            min(1_024, max(8, self.draw.lognormal(median: workload.outputMedian, sigma: workload.outputSigma))))
        var expectedOutput = 256
        if self.draw.uniform() < self.model.maxTokensShare {
            let round = [64, 128, 256, 512, 1_024].first { $0 >= output } ?? 1_024
            expectedOutput = self.draw.uniform() < 0.5 ? round : min(1_024, 2 * round)
        }
        let overhead = self.draw.uniform(self.model.overheadBytes.lowerBound, self.model.overheadBytes.upperBound)
        let measured = self.now >= self.parameters.warmupSeconds && self.now < self.arrivalsEnd
        var request = Request(
            zone: conversation.zone, workload: conversation.workload, prompt: conversation.tokens, output: output,
            promptEstimate: max(1, Int(conversation.bytes + overhead) / 4), expectedOutput: expectedOutput,
            sloMs: workload.ttftObjectiveMs, arrival: self.now, measured: measured)
        request.conversation = id
        request.turn = conversation.turn
        request.prefixes = conversation.chunks
        self.conversations[id] = conversation
        self.requests.append(request)
        if measured { self.pendingMeasured += 1 }
        self.dispatch(self.requests.count - 1)
    }

    /// One more message in a conversation's history: its tokens, bytes and prefix hash.
    private func append(_ conversation: inout Conversation, id: Int, tokens: Int) {
        conversation.tokens += tokens
        conversation.bytes += Double(tokens) * conversation.bytesPerToken + self.model.conversation.messageOverheadBytes
        conversation.messages += 1
        var mix = SplitMix64(seed: UInt64(id) << 16 | UInt64(conversation.messages))
        conversation.chunks.append(PrefixChunk(hash: mix.next(), tokens: Int32(conversation.bytes / 4)))
    }

    /// After a turn: its answer joins the history, and the next turn comes after a think time
    /// (none after the arrivals end).
    private func turnEnded(_ r: Int) {
        let id = self.requests[r].conversation
        guard id >= 0, !self.requests[r].ended else { return }
        self.requests[r].ended = true
        guard self.conversations[id].turn == self.requests[r].turn,
            self.conversations[id].turn < self.conversations[id].turns
        else { return }
        var conversation = self.conversations[id]
        self.append(&conversation, id: id, tokens: self.requests[r].output)
        let c = self.model.conversation
        conversation.nextUser = Int(max(4, self.draw.lognormal(median: c.userMedian, sigma: c.userSigma)))
        self.conversations[id] = conversation
        guard conversation.tokens + conversation.nextUser < 8_000 else { return }
        let at = self.now + self.draw.lognormal(median: c.thinkMedian, sigma: c.thinkSigma)
        if at < self.arrivalsEnd { self.events.push(at, .turn(conversation: id)) }
    }

    /// The car's runtime keeps a conversation's tokens (LRU over its sequences).
    private func keep(_ c: Int, _ conversation: Int, tokens: Int) {
        guard conversation >= 0, self.cars[c].cacheSequences > 0 else { return }
        self.cars[c].cache.removeAll { $0.conversation == conversation }
        self.cars[c].cache.append((conversation, tokens))
        if self.cars[c].cache.count > self.cars[c].cacheSequences { self.cars[c].cache.removeFirst() }
    }

    /// Adds a job's slot-seconds within the measured window to its car.
    private func countBusy(_ c: Int, _ job: Job) {
        guard let began = job.beganAt else { return }
        let from = max(began, self.parameters.warmupSeconds)
        let to = min(self.now, self.arrivalsEnd)
        if to > from { self.cars[c].busySlotSeconds += to - from }
    }

    static func threadCPUNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    // MARK: Results

    private func result() -> SimulationResult {
        var ttft: [Double] = []
        var tpot: [Double] = []
        var met = 0
        var failed = 0
        var central = 0
        var measured = 0
        var lost = 0
        var tokens = 0
        var centralTokens = 0
        var classCount = [Int](repeating: 0, count: self.model.workloads.count)
        var classMet = classCount
        for r in self.requests where r.measured {
            measured += 1
            classCount[r.workload] += 1
            tokens += r.prompt + r.output
            centralTokens += r.centralTokens
            if r.usedCentral { central += 1 }
            guard !r.failed, let first = r.firstTokenAt, let end = r.finishedAt else {
                if r.failed { failed += 1 } else { lost += 1 }
                ttft.append(.infinity)
                tpot.append(.infinity)
                continue
            }
            let t = (first - r.arrival) * 1_000 + (r.forwarded ? self.parameters.hopMilliseconds : 0)
            let p = r.output > 1 ? (end - first) * 1_000 / Double(r.output - 1) : 0
            ttft.append(t)
            tpot.append(p)
            // Each request against its own class's objective — the one the scheduler was told.
            if t <= r.sloMs && p <= SimulationParameters.tpotObjectiveMs {
                met += 1
                classMet[r.workload] += 1
            }
        }
        ttft.sort()
        tpot.sort()
        self.predictionErrors.sort()
        var later: [Double] = []
        var first: [Double] = []
        var hits = 0
        for r in self.requests where r.measured && r.conversation >= 0 {
            let t = r.failed ? Double.infinity : r.firstTokenAt.map { ($0 - r.arrival) * 1_000 } ?? .infinity
            if r.turn >= 2 {
                later.append(t)
                if r.hit { hits += 1 }
            } else {
                first.append(t)
            }
        }
        let utilisation = self.cars.filter { $0.id != nil && $0.plugged }.map {
            $0.busySlotSeconds / (Double($0.slots) * self.parameters.measuredSeconds)
        }.sorted()
        let mean = utilisation.reduce(0, +) / Double(max(1, utilisation.count))
        let variance = utilisation.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, utilisation.count))
        let share = { (n: Int, d: Int) in d > 0 ? Double(n) / Double(d) : 0 }
        return SimulationResult(
            parameters: self.parameters, requests: measured, failed: failed, lost: lost,
            centralFraction: share(central, measured), centralTokenFraction: share(centralTokens, tokens),
            centralDollarsPer1kRequests: Double(centralTokens) / 1e6 * self.model.centralDollarsPerMillionTokens
                / Double(max(1, measured)) * 1_000,
            sloAttainment: share(met, measured),
            classAttainment: self.model.workloads.indices.map { (self.model.workloads[$0].name, share(classMet[$0], classCount[$0])) },
            ttftMs: ttft, tpotMs: tpot,
            privacyViolations: self.privacyViolations, eligibilityViolations: self.eligibilityViolations,
            decisionMicroseconds: self.decisions > 0
                ? Double(self.decisionNanoseconds) / Double(self.decisions) / 1_000 : 0,
            predictedOverObservedTTFT: self.predictionErrors,
            laterTurnHitShare: later.isEmpty ? 0 : Double(hits) / Double(later.count), laterTurnTTFTMs: later.sorted(),
            firstTurnTTFTMs: first.sorted(),
            prefillSavedShare: self.prefillTokens > 0 ? Double(self.prefillSaved) / Double(self.prefillTokens) : 0,
            utilisation: utilisation, utilisationCV: mean > 0 ? variance.squareRoot() / mean : 0,
            forwardedFraction: share(self.forwardedRequests, measured),
            digestWritesPerSecond: Double(self.digestWrites) / self.parameters.measuredSeconds,
            digestBytesPerSecond: Double(self.digestBytes) / self.parameters.measuredSeconds)
    }
}

/// What one run measured.
public struct SimulationResult: Sendable {
    public var parameters: SimulationParameters
    /// Requests that arrived in the measured window.
    public var requests: Int
    public var failed: Int
    /// Neither finished nor failed when the run ended: must be 0.
    public var lost: Int
    /// Share of requests that used central (any attempt).
    public var centralFraction: Double
    /// Share of all tokens (prompt + output, every attempt on central) processed by central.
    public var centralTokenFraction: Double
    /// Central's price for the run, per 1,000 requests ($, at the parameter set's price per token).
    public var centralDollarsPer1kRequests: Double
    /// Share of requests with TTFT within their class's objective and TPOT ≤ 100 ms.
    public var sloAttainment: Double
    /// The same per request class.
    public var classAttainment: [(String, Double)]
    /// Sorted; failed requests are +∞.
    public var ttftMs: [Double]
    public var tpotMs: [Double]
    public var privacyViolations: Int
    public var eligibilityViolations: Int
    /// Mean thread CPU time per decision.
    public var decisionMicroseconds: Double
    /// Sorted predicted ÷ observed TTFT, first attempts.
    public var predictedOverObservedTTFT: [Double]
    /// Multi-turn workload: share of turns ≥ 2 whose first token came from a car holding a prefix
    /// of them, TTFT of turns ≥ 2 and of first turns (sorted, failed = +∞), share of prefill
    /// tokens the cars' caches saved, and per-car utilisation (slot-seconds ÷ slots × window, sorted)
    /// with its coefficient of variation.
    public var laterTurnHitShare: Double = 0
    public var laterTurnTTFTMs: [Double] = []
    public var firstTurnTTFTMs: [Double] = []
    public var prefillSavedShare: Double = 0
    public var utilisation: [Double] = []
    public var utilisationCV: Double = 0
    /// Issue #21, with several replicas: share of requests forwarded to another replica, and the
    /// capacity digests written to etcd (only on change) in the measured window.
    public var forwardedFraction: Double = 0
    public var digestWritesPerSecond: Double = 0
    public var digestBytesPerSecond: Double = 0

    public static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.down)))]
    }
}
