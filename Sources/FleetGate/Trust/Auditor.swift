public import AsyncHTTPClient
import CoreMetrics
public import FleetGeo
import FleetProtocol
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
public import ServiceLifecycle
import Synchronization

/// Audits car results on trusted capacity in the same zone (issue #20).
///
/// Responsibilities:
/// 1. choose, when a car's answer has been delivered, whether to audit it: a fraction per zone
///    (``GatewayConfiguration/Audit``), drawn at random after the request was served — nothing
///    the car sees differs, so it cannot tell audited requests from others;
/// 2. hold the prompt and the car's text in memory only, in a bounded queue (full: dropped and
///    counted), never logged;
/// 3. score the text by teacher forcing on a trusted runtime of the zone: `POST /v1/completions`
///    with the rendered prompt followed by the car's text, `echo: true`, `logprobs: 0`,
///    `max_tokens: 1`, and take the mean log-likelihood per token of the car's tokens — no second
///    generation, and no dependence on the car's sampling;
/// 4. keep a reputation per car (``AuditReputation``) and quarantine a car that falls below the
///    threshold: it is told `quarantine` and closed, and refused until the gateway restarts.
public final class Auditor: Service, Sendable {
    /// One completed car answer waiting for its audit. Its description shows sizes, never text.
    struct Job: Sendable, CustomStringConvertible {
        var vehicleID: String
        var pseudonym: String
        var zone: String
        var model: String
        var chat: Bool
        var body: ByteBuffer
        var text: String
        var description: String {
            "Job(zone: \(self.zone), body: \(self.body.readableBytes) B, text: \(self.text.utf8.count) B)"
        }
    }

    /// An audit's verdict.
    public enum Verdict: Sendable, Hashable {
        case pass(meanLogprob: Double, tokens: Int)
        case fail(meanLogprob: Double, tokens: Int)
        /// Too few tokens to judge.
        case skipped
    }

    private let jobs: AsyncStream<Job>
    private let queue: AsyncStream<Job>.Continuation
    /// Trusted runtimes by zone.
    let endpoints: [String: [String]]
    let settings: Mutex<GatewayConfiguration.Audit>
    let client: HTTPClient
    let trust: FleetTrust
    let logger: Logger
    private let reputations = Mutex<[String: AuditReputation]>([:])
    private let onQuarantine = Mutex<(@Sendable () -> Void)?>(nil)

    init(
        configuration: GatewayConfiguration.Audit, regionMap: RegionMap, client: HTTPClient, trust: FleetTrust,
        logger: Logger
    ) {
        var endpoints: [String: [String]] = [:]
        for endpoint in configuration.endpoints {
            guard let zone = regionMap.zone(ofRegion: endpoint.region) else { continue }
            endpoints[zone.id, default: []].append(endpoint.baseURL)
        }
        self.endpoints = endpoints
        self.settings = Mutex(configuration)
        self.client = client
        self.trust = trust
        self.logger = logger
        (self.jobs, self.queue) = AsyncStream.makeStream(
            of: Job.self, bufferingPolicy: .bufferingOldest(configuration.queueCapacity))
    }

    /// Called after a quarantine, to close the car's tunnel.
    func whenQuarantined(_ action: @escaping @Sendable () -> Void) { self.onQuarantine.withLock { $0 = action } }

    /// Takes reloadable settings (fraction, thresholds, template).
    func apply(_ configuration: GatewayConfiguration.Audit) { self.settings.withLock { $0 = configuration } }

    /// The share of car answers audited in `zone` (0 where the zone has no trusted runtime).
    public func fraction(zone: String) -> Double {
        guard self.endpoints[zone] != nil else { return 0 }
        return self.settings.withLock { $0.zoneFractions[zone] ?? $0.fraction }
    }

    /// A car's answer was delivered whole (one car, no migration): audit it with the zone's
    /// probability. Cheap and non-blocking: one random draw and, if chosen, one enqueue; the text
    /// (which the relay keeps undecoded) is read only then.
    func consider(
        vehicleID: String, pseudonym: String, zone: String, model: String, chat: Bool, body: ByteBuffer,
        text: @autoclosure () -> String
    ) {
        let share = self.fraction(zone: zone)
        guard share > 0, Double.random(in: 0..<1) < share else { return }
        let text = text()
        guard !text.isEmpty else { return }
        let job = Job(
            vehicleID: vehicleID, pseudonym: pseudonym, zone: zone, model: model, chat: chat, body: body, text: text)
        if case .dropped = self.queue.yield(job) {
            self.trust.metrics.auditDropped.increment()
        } else {
            self.trust.metrics.auditQueued.increment()
        }
    }

    /// A car's reputation now (nil before its first audit).
    public func reputation(of vehicleID: String) -> AuditReputation? { self.reputations.withLock { $0[vehicleID] } }

    public func run() async throws {
        let concurrency = self.settings.withLock { $0.concurrency }
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await job in self.jobs.cancelOnGracefulShutdown() {
                if running >= concurrency {
                    await group.next()
                    running -= 1
                }
                running += 1
                group.addTask { await self.audit(job) }
            }
        }
    }

    /// Scores one job and updates the car's reputation.
    func audit(_ job: Job) async {
        let start = NIODeadline.now()
        let verdict: Verdict
        do {
            verdict = try await self.score(job)
        } catch {
            self.trust.metrics.auditError.increment()
            self.logger.warning(
                "Audit failed on the trusted runtime", metadata: ["fleet.zone": "\(job.zone)", "error": "\(error)"])
            return
        }
        self.trust.metrics.auditDuration.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
        let passed: Bool
        switch verdict {
        case .skipped:
            self.trust.metrics.auditSkipped.increment()
            return
        case .pass(let mean, _):
            self.trust.metrics.auditPass.increment()
            self.trust.metrics.auditScore.record(-mean)
            passed = true
        case .fail(let mean, _):
            self.trust.metrics.auditFail.increment()
            self.trust.metrics.auditScore.record(-mean)
            passed = false
        }
        let threshold = self.settings.withLock { $0.quarantineBelow }
        if case .pass(let mean, let tokens) = verdict {
            self.logScored(job, verdict: "pass", mean: mean, tokens: tokens)
        }
        if case .fail(let mean, let tokens) = verdict {
            self.logScored(job, verdict: "fail", mean: mean, tokens: tokens)
        }
        // A car audited again after its quarantine was lifted (an operator deleted its line) starts
        // afresh: the record that got it quarantined would quarantine it again at once (helper-77).
        let lifted = !self.trust.isQuarantined(job.vehicleID)
        let reputation = self.reputations.withLock { table in
            if lifted, table[job.vehicleID]?.quarantined == true { table[job.vehicleID] = AuditReputation() }
            table[job.vehicleID, default: AuditReputation()].record(passed: passed)
            return table[job.vehicleID]!
        }
        if !passed {
            self.logger.notice(
                "Car failed an audit",
                metadata: [
                    "fleet.vehicle": "\(job.pseudonym)", "fleet.zone": "\(job.zone)",
                    "fleet.reputation": "\(reputation.score)",
                ])
        }
        if reputation.score < threshold,
            self.trust.quarantine(job.vehicleID, reason: "failed \(reputation.failures) of \(reputation.audits) audits")
        {
            self.logger.warning(
                "Car quarantined for its audits",
                metadata: [
                    "fleet.vehicle": "\(job.pseudonym)", "fleet.reputation": "\(reputation.score)",
                    "fleet.audits": "\(reputation.audits)", "fleet.audits.failed": "\(reputation.failures)",
                ])
            self.reputations.withLock { $0[job.vehicleID]?.quarantined = true }
            self.onQuarantine.withLock { $0 }?()
        }
    }

    /// One line per audit (sizes and scores, never text): what calibration and `bench_audit.py` read.
    private func logScored(_ job: Job, verdict: String, mean: Double, tokens: Int) {
        self.logger.info(
            "Audit scored",
            metadata: [
                "fleet.vehicle": "\(job.pseudonym)", "fleet.zone": "\(job.zone)", "fleet.audit.verdict": "\(verdict)",
                "fleet.audit.mean_logprob": "\(mean)", "fleet.audit.tokens": "\(tokens)",
            ])
    }

    /// Teacher-forces the car's text on a trusted runtime of its zone.
    func score(_ job: Job) async throws -> Verdict {
        guard let base = self.endpoints[job.zone]?.randomElement() else { return .skipped }
        let settings = self.settings.withLock { $0 }
        guard let request = try? JSON.decode(CompletionRequest.self, from: Array(job.body.readableBytesView)) else {
            return .skipped
        }
        let prompt: String
        if job.chat {
            let template = settings.chatTemplate == "chatml" ? ChatTemplate.chatML : ChatTemplate.smolLM2
            prompt = template.continuationPrompt(request.messages ?? [])
        } else {
            prompt = request.prompt ?? ""
        }
        var http = HTTPClientRequest(url: base + "/completions")
        http.method = .POST
        http.headers.add(name: "content-type", value: "application/json")
        http.body = .bytes(
            JSON.buffer(
                ScoreRequest(
                    model: job.model, prompt: prompt + job.text, echo: true, logprobs: 0, max_tokens: 1, temperature: 0)
            ))
        let response = try await self.client.execute(http, timeout: .seconds(300))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else {
            throw AuditError(message: "trusted runtime answered \(response.status.code)")
        }
        let decoded = try JSON.decode(ScoreResponse.self, from: Array(body.readableBytesView))
        guard let logprobs = decoded.choices.first?.logprobs else {
            throw AuditError(message: "no logprobs in the answer")
        }
        let values = Self.completionLogprobs(logprobs, prompt: prompt, text: job.text)
        guard values.count >= settings.minTokens else { return .skipped }
        let mean = values.reduce(0, +) / Double(values.count)
        return mean >= settings.minMeanLogprob
            ? .pass(meanLogprob: mean, tokens: values.count) : .fail(meanLogprob: mean, tokens: values.count)
    }

    /// The log-likelihoods of the car's tokens: those whose offset in the echoed text (where the
    /// runtime renders special tokens as nothing) falls inside the text after the prompt.
    package static func completionLogprobs(_ logprobs: ScoreResponse.Logprobs, prompt: String, text: String) -> [Double]
    {
        var visiblePrompt = prompt
        for special in ChatTemplate.specialTokens {
            visiblePrompt = visiblePrompt.replacingOccurrences(of: special, with: "")
        }
        let start = visiblePrompt.unicodeScalars.count
        let end = start + text.unicodeScalars.count
        var values: [Double] = []
        for (offset, value) in zip(logprobs.text_offset, logprobs.token_logprobs) {
            guard offset >= start, offset < end, let value, value.isFinite else { continue }
            values.append(value)
        }
        return values
    }

    struct ScoreRequest: Encodable {
        var model: String
        var prompt: String
        var echo: Bool
        var logprobs: Int
        var max_tokens: Int
        var temperature: Double
    }

    /// The part of a `/v1/completions` answer an audit reads.
    package struct ScoreResponse: Decodable {
        package struct Logprobs: Decodable {
            package var text_offset: [Int]
            package var token_logprobs: [Double?]
            package init(text_offset: [Int], token_logprobs: [Double?]) {
                self.text_offset = text_offset
                self.token_logprobs = token_logprobs
            }
        }
        struct Choice: Decodable { var logprobs: Logprobs? }
        var choices: [Choice]
    }
}

/// Why an audit could not be scored.
struct AuditError: Error, CustomStringConvertible {
    var message: String
    var description: String { self.message }
}
