public import FleetProtocol
public import NIOCore
import Synchronization

/// TESTING ONLY (issue #20): a car that returns wrong text on every Nth job — synthetic words from
/// the request's seed instead of the model's answer — while advertising the honest engine's models
/// and rates. Audits on trusted capacity must catch it (`engine.cheatEvery`; `docs/security.md`).
public struct CheatingEngine: InferenceEngine {
    let inner: any InferenceEngine
    let every: Int
    let fake: SyntheticEngine
    private let jobs = Counter()

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// - Parameter every: 1 cheats on every job, 10 on one job in ten (the 10th, 20th, …).
    public init(inner: any InferenceEngine, every: Int) {
        self.inner = inner
        self.every = max(1, every)
        var profile = HardwareProfile.of(.ai5)
        profile.slots = max(1, inner.slots)
        self.fake = SyntheticEngine(profile: profile)
    }

    public var models: [ModelOffer] { self.inner.models }
    public func serves(model: String) -> Bool { self.inner.serves(model: model) }
    public var slots: Int { self.inner.slots }
    public var measuresRates: Bool { self.inner.measuresRates }
    public var continuation: ContinuationMode { self.inner.continuation }

    public func start(_ job: InferenceJob, on eventLoop: any EventLoop, sink: any TokenSink) -> any InferenceJobHandle {
        let index = self.jobs.value.wrappingAdd(1, ordering: .relaxed).newValue
        if index % self.every == 0 {
            return self.fake.start(job, on: eventLoop, sink: sink)
        }
        return self.inner.start(job, on: eventLoop, sink: sink)
    }
}
