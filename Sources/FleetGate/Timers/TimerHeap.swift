package import NIOCore

/// Deadlines and what to call at each, kept for one event loop by ``LoopTimers``: a binary heap
/// ordered by deadline, whose cancelled entries are dropped lazily — when they reach the top, or
/// when they outnumber the live ones (issue #19).
///
/// Nearly every per-request deadline (a body's, an attempt's first token) is cancelled long before
/// it is due, so a cancel must cost next to nothing: it clears the entry's slot and leaves the
/// heap alone. A slot's generation tells a heap entry whose slot was cancelled, and perhaps
/// reused since, from a live one.
///
/// A value type with no I/O and no clock: the caller says what time it is.
package struct TimerHeap<Handler> {
    /// A timer's name, to cancel it with: its slot and the slot's generation when it was set.
    package struct Token: Hashable, Sendable {
        fileprivate let slot: Int32
        fileprivate let generation: UInt32
    }

    private struct Entry {
        var deadline: NIODeadline
        var slot: Int32
        var generation: UInt32
    }

    private struct Slot {
        var generation: UInt32 = 0
        var handler: Handler?
    }

    private var heap: [Entry] = []
    private var slots: [Slot] = []
    private var freeSlots: [Int32] = []

    /// Timers set and neither cancelled nor due yet.
    package private(set) var count = 0

    package init() {}

    /// Entries in the heap, live or cancelled (for tests: it stays within a bound of ``count``).
    package var storedEntries: Int { self.heap.count }

    /// Sets a timer: `handler` is due at `deadline`.
    package mutating func schedule(at deadline: NIODeadline, _ handler: Handler) -> Token {
        let slot: Int32
        if let free = self.freeSlots.popLast() {
            slot = free
            self.slots[Int(slot)].handler = handler
        } else {
            slot = Int32(truncatingIfNeeded: self.slots.count)
            self.slots.append(Slot(handler: handler))
        }
        let generation = self.slots[Int(slot)].generation
        self.count += 1
        self.compactIfMostlyCancelled()
        self.push(Entry(deadline: deadline, slot: slot, generation: generation))
        return Token(slot: slot, generation: generation)
    }

    /// Cancels a timer; false when it had already been cancelled or come due.
    @discardableResult
    package mutating func cancel(_ token: Token) -> Bool {
        self.take(token) != nil
    }

    /// The earliest deadline of a live timer (cancelled entries on top are dropped on the way).
    package mutating func nextDeadline() -> NIODeadline? {
        while let top = self.heap.first {
            if self.isLive(top) { return top.deadline }
            self.popTop()
        }
        return nil
    }

    /// Takes every live timer due at `now` or before out of the heap and appends its token to `due`,
    /// earliest first. Each stays set until ``take(_:)``: one that the handler of an earlier one
    /// cancels is not called (as NIO does not run a task cancelled before its turn).
    package mutating func popDue(at now: NIODeadline, into due: inout [Token]) {
        while let top = self.heap.first {
            if !self.isLive(top) {
                self.popTop()
                continue
            }
            guard top.deadline <= now else { return }
            self.popTop()
            due.append(Token(slot: top.slot, generation: top.generation))
        }
    }

    /// A due timer's handler, if it was not cancelled since ``popDue(at:into:)``; the timer is then done.
    package mutating func take(_ token: Token) -> Handler? {
        let index = Int(token.slot)
        guard index < self.slots.count, self.slots[index].generation == token.generation,
            let handler = self.slots[index].handler
        else { return nil }
        self.release(index)
        return handler
    }

    private func isLive(_ entry: Entry) -> Bool { Self.isLive(entry, in: self.slots) }

    /// Whether `entry` is its slot's timer still set (not cancelled, not due, the slot not reused).
    private static func isLive(_ entry: Entry, in slots: [Slot]) -> Bool {
        let slot = slots[Int(entry.slot)]
        return slot.generation == entry.generation && slot.handler != nil
    }

    /// Frees a slot: its handler goes, and its next use gets a new generation.
    private mutating func release(_ index: Int) {
        self.slots[index].handler = nil
        self.slots[index].generation &+= 1
        self.freeSlots.append(Int32(truncatingIfNeeded: index))
        self.count -= 1
    }

    /// Keeps the heap within twice the live timers and 64: a request's deadlines are seconds away
    /// and nearly all are cancelled, so without this the heap would hold every request of the
    /// last body timeout. Amortized, each entry is moved a constant number of times.
    private mutating func compactIfMostlyCancelled() {
        guard self.heap.count >= 64, self.heap.count > 2 * self.count else { return }
        let slots = self.slots  // the closure may not read `self` while the heap is being changed
        self.heap.removeAll { !Self.isLive($0, in: slots) }
        guard self.heap.count > 1 else { return }
        for index in stride(from: self.heap.count / 2 - 1, through: 0, by: -1) { self.siftDown(index) }
    }

    private mutating func push(_ entry: Entry) {
        self.heap.append(entry)
        var child = self.heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard self.heap[child].deadline < self.heap[parent].deadline else { break }
            self.heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        let last = self.heap.removeLast()
        guard !self.heap.isEmpty else { return }
        self.heap[0] = last
        self.siftDown(0)
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        let count = self.heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { return }
            let right = left + 1
            let child = right < count && self.heap[right].deadline < self.heap[left].deadline ? right : left
            guard self.heap[child].deadline < self.heap[parent].deadline else { return }
            self.heap.swapAt(child, parent)
            parent = child
        }
    }
}
