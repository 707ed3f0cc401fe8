import Synchronization

/// The lost streams waiting for a slot (``CapacityWait``), counted by zone and model, so that new
/// work yields the slots that free up to them.
///
/// At full load a slot that frees is taken within milliseconds by the next new request (a client
/// whose stream just ended sends its next one at once), while a waiter asks every 100 ms: without a
/// rule, waiters lost nearly every race (helper-58: 6 slots freed during a wait, 0 served). While a
/// stream waits in a zone for a model, new requests there (and hedges) are offered no car it could take: central
/// capacity with room still serves them (a waiter that could continue there would not wait), and
/// otherwise they are answered 503 `server_overloaded` with `Retry-After` — which they would be
/// anyway a moment later, the zone being full — and the next free slot is the waiter's. A wait lasts at most
/// `dispatch.capacityWaitSeconds`.
package final class CapacityWaiters: Sendable {
    private struct Key: Hashable {
        var zone: String
        var model: String
    }

    /// All waiters: read without the lock by every request (zero nearly always).
    private let total = Atomic<Int>(0)
    /// How many waiters need each context window (``RequestProfile/neededContextTokens``; 0: any), by zone
    /// and model: a few distinct needs at most, changed in place.
    private let waiting = Mutex<[Key: [Int: Int]]>([:])

    init() {}

    /// A stream begins to wait, for a car whose window holds `needing` tokens (0: any car).
    func begin(zone: String, model: String, needing: Int = 0) {
        self.waiting.withLock { $0[Key(zone: zone, model: model), default: [:]][needing, default: 0] += 1 }
        self.total.add(1, ordering: .relaxed)
    }

    /// A stream stopped waiting (served, given up, or gone); once for each ``begin(zone:model:needing:)``,
    /// with its arguments.
    func end(zone: String, model: String, needing: Int = 0) {
        self.waiting.withLock { waiting in
            let key = Key(zone: zone, model: model)
            // Taken out and put back: changed in place, not copied.
            guard var needs = waiting.removeValue(forKey: key) else { return }
            if let count = needs[needing] { needs[needing] = count > 1 ? count - 1 : nil }
            if !needs.isEmpty { waiting[key] = needs }
        }
        self.total.subtract(1, ordering: .relaxed)
    }

    /// Streams waiting now, in every zone.
    package var count: Int { self.total.load(ordering: .relaxed) }

    /// The smallest context window a stream waiting in `zone` for `model` needs (0: any car), or nil when
    /// none waits: a car with a smaller window would serve no waiter, so it is not left to them
    /// (helper-124: a long conversation waiting for a large car held the free small ones back from short requests).
    func smallestNeed(zone: String, model: String) -> Int? {
        guard self.total.load(ordering: .relaxed) > 0 else { return nil }
        return self.waiting.withLock { $0[Key(zone: zone, model: model)]?.keys.min() }
    }
}
