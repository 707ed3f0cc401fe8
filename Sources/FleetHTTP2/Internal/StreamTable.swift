/// A connection's open streams by id: an open-addressed table with linear probing.
///
/// Replaces `[Int32: HTTP2Stream]`, whose per-process seeded SipHash cost several hundred
/// instructions a request across insert, lookups and removal (callgrind, fleet-h2bench). Ids are
/// spread by Fibonacci hashing, so a peer's increasing odd ids land in distinct slots; a peer that
/// picks colliding ids only lengthens its own probes, which the table bounds by keeping at most
/// half its slots full (and SETTINGS_MAX_CONCURRENT_STREAMS bounds the count). Removal shifts the
/// probe run back (no tombstones), so lookups stay short however long the connection lives.
///
/// The slots are manually managed memory, the one unsafe structure of the engine, confined to this
/// type: a connection holds the table in a `let`, and no access to the table's own properties spans
/// a call, so the hot lookups (one per nghttp2 callback) carry no run-time exclusivity check, which
/// a `Dictionary` or `Array` stored in a `var` of the handler does (~80 instructions each).
/// Tested against a dictionary (`StreamTableTests`).
final class StreamTable<Value: AnyObject> {
    private var ids: UnsafeMutablePointer<Int32>
    private var values: UnsafeMutablePointer<Value?>
    private var capacity: Int
    private var shift: UInt32
    /// The number of streams in the table.
    private(set) var count = 0

    init() {
        self.capacity = 16
        self.shift = 32 - 4
        self.ids = .allocate(capacity: 16)
        self.ids.initialize(repeating: 0, count: 16)
        self.values = .allocate(capacity: 16)
        self.values.initialize(repeating: nil, count: 16)
    }

    deinit {
        self.values.deinitialize(count: self.capacity)
        self.values.deallocate()
        self.ids.deallocate()
    }

    @inline(__always)
    private func home(_ id: Int32) -> Int {
        Int((UInt32(bitPattern: id) &* 0x9E37_79B1) >> self.shift)
    }

    /// The stream with this id, or nil (id 0, the connection, is never in the table).
    @inline(__always)
    subscript(id: Int32) -> Value? {
        guard id != 0 else { return nil }
        let ids = self.ids
        let mask = self.capacity - 1
        var slot = self.home(id)
        while true {
            let found = ids[slot]
            if found == id { return self.values[slot] }
            if found == 0 { return nil }
            slot = (slot + 1) & mask
        }
    }

    /// Adds `value` under `id` (> 0), replacing what was there.
    func insert(_ value: Value, for id: Int32) {
        precondition(id > 0, "stream ids are positive")
        if (self.count + 1) * 2 > self.capacity { self.grow() }
        let ids = self.ids
        let mask = self.capacity - 1
        var slot = self.home(id)
        while ids[slot] != 0 && ids[slot] != id { slot = (slot + 1) & mask }
        if ids[slot] == 0 { self.count += 1 }
        ids[slot] = id
        self.values[slot] = value
    }

    /// Removes and returns the stream `id`, if present.
    func remove(_ id: Int32) -> Value? {
        guard id != 0 else { return nil }
        let ids = self.ids
        let values = self.values
        let mask = self.capacity - 1
        var slot = self.home(id)
        while ids[slot] != id {
            if ids[slot] == 0 { return nil }
            slot = (slot + 1) & mask
        }
        let removed = values[slot]
        self.count -= 1
        // Backward-shift deletion: move later members of the probe run into the hole when the
        // hole lies on their way from their home slot.
        var hole = slot
        var next = (hole + 1) & mask
        while ids[next] != 0 {
            let home = self.home(ids[next])
            if (next - home) & mask >= (next - hole) & mask {
                ids[hole] = ids[next]
                values[hole] = values[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        ids[hole] = 0
        values[hole] = nil
        return removed
    }

    /// Every stream, in no particular order.
    var all: [Value] {
        UnsafeBufferPointer(start: self.values, count: self.capacity).compactMap { $0 }
    }

    /// Empties the table, keeping its capacity.
    func removeAll() {
        guard self.count > 0 else { return }
        self.ids.update(repeating: 0, count: self.capacity)
        self.values.update(repeating: nil, count: self.capacity)
        self.count = 0
    }

    private func grow() {
        let oldIDs = self.ids
        let oldValues = self.values
        let oldCapacity = self.capacity
        self.capacity = oldCapacity * 2
        self.shift -= 1
        self.ids = .allocate(capacity: self.capacity)
        self.ids.initialize(repeating: 0, count: self.capacity)
        self.values = .allocate(capacity: self.capacity)
        self.values.initialize(repeating: nil, count: self.capacity)
        self.count = 0
        for i in 0..<oldCapacity where oldIDs[i] != 0 {
            self.insert(oldValues[i]!, for: oldIDs[i])
        }
        oldValues.deinitialize(count: oldCapacity)
        oldValues.deallocate()
        oldIDs.deallocate()
    }
}
