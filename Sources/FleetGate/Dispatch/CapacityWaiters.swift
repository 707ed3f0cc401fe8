import Synchronization

/// The lost streams waiting for a slot (``CapacityWait``), counted by zone and model, so that new
/// work yields the slots that free up to them.
///
/// At full load a slot that frees is taken within milliseconds by the next new request (a client
/// whose stream just ended sends its next one at once), while a waiter asks every 100 ms: without a
/// rule, waiters lost nearly every race (helper-58: 6 slots freed during a wait, 0 served). While a
/// stream waits in a zone for a model, new requests there (and hedges) are offered no car: central
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
    private let counts = Mutex<[Key: Int]>([:])

    init() {}

    /// A stream begins to wait.
    func begin(zone: String, model: String) {
        self.counts.withLock { $0[Key(zone: zone, model: model), default: 0] += 1 }
        self.total.add(1, ordering: .relaxed)
    }

    /// A stream stopped waiting (served, given up, or gone); once for each ``begin(zone:model:)``.
    func end(zone: String, model: String) {
        self.counts.withLock { counts in
            let key = Key(zone: zone, model: model)
            guard let count = counts[key] else { return }
            counts[key] = count > 1 ? count - 1 : nil
        }
        self.total.subtract(1, ordering: .relaxed)
    }

    /// Streams waiting now, in every zone.
    package var count: Int { self.total.load(ordering: .relaxed) }

    /// Whether a stream waits for a slot in `zone` for `model`.
    func anyWaiting(zone: String, model: String) -> Bool {
        guard self.total.load(ordering: .relaxed) > 0 else { return false }
        return self.counts.withLock { $0[Key(zone: zone, model: model)] != nil }
    }
}
