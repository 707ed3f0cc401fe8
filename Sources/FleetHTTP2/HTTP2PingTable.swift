import NIOCore

/// The PINGs a connection sent and has not seen acknowledged (RFC 9113 §6.7), without I/O.
///
/// Each PING carries its id as the 8 opaque bytes (big-endian), so an ACK finds its entry; an ACK
/// whose opaque data we never sent is ignored. At most ``capacity`` PINGs wait: sending one more
/// pushes the oldest out, and whoever waited for it is told it went unanswered.
///
/// Who waits for a caller's PING is the handler's business (a promise, kept by id): nothing here is
/// reference-counted, so the actions that carry PINGs cost nothing to copy or drop.
struct HTTP2PingTable {
    /// Why a PING was sent, which decides what its ACK means.
    enum Purpose: Equatable {
        /// ``HTTP2ConnectionHandler/ping()``: its waiter hears the round trip.
        case caller
        /// A keepalive PING (``HTTP2Configuration/keepaliveInterval``).
        case keepalive
        /// The PING after a server's shutdown notice: its ACK proves the peer saw the notice.
        case shutdownNotice
    }

    /// One outstanding PING.
    struct Entry {
        let id: UInt64
        let sent: NIODeadline
        let purpose: Purpose
    }

    /// How many PINGs may wait for their ACK at once.
    let capacity: Int
    /// Outstanding PINGs, oldest first.
    private(set) var outstanding: [Entry] = []
    private var nextID: UInt64 = 1

    init(capacity: Int) { self.capacity = capacity }

    /// Records a PING sent at `now` and returns its id, and the entry pushed out when the table was full.
    mutating func add(_ purpose: Purpose, at now: NIODeadline) -> (id: UInt64, evicted: Entry?) {
        let id = self.nextID
        self.nextID &+= 1
        self.outstanding.append(Entry(id: id, sent: now, purpose: purpose))
        let evicted = self.outstanding.count > self.capacity ? self.outstanding.removeFirst() : nil
        return (id, evicted)
    }

    /// Removes and returns the PING that `opaque` acknowledges, or nil when we never sent it (or gave up on it).
    mutating func remove(acknowledging opaque: UInt64) -> Entry? {
        guard let index = self.outstanding.firstIndex(where: { $0.id == opaque }) else { return nil }
        return self.outstanding.remove(at: index)
    }

    /// When the oldest outstanding keepalive PING was sent, if one is outstanding.
    var oldestKeepalive: NIODeadline? {
        for entry in self.outstanding {
            if case .keepalive = entry.purpose { return entry.sent }
        }
        return nil
    }

    /// Empties the table (the connection closed).
    mutating func removeAll() {
        self.outstanding.removeAll()
    }
}
