/// The decisions of an HTTP/1.1 connection's guard (`HTTP1ConnectionGuard`), without NIO: which
/// timer runs, whether a request is held back while the socket is not writable, and whether a read
/// may go through. Tested without sockets.
package struct HTTP1ConnectionState: Sendable, Equatable {
    /// Which deadline is running.
    package enum Timer: Sendable, Equatable {
        case none
        /// The request head must be complete (from the protocol being known).
        case header
        /// The next request head must be complete (from the previous response's end).
        case keepAlive
        /// The peer must read again: it stopped while its response was being written, or sent a head
        /// while not reading (the stall timeout, as HTTP/2 resets a stalled stream).
        case stall
    }

    /// What the handler does with an inbound request part.
    package enum Inbound: Sendable, Equatable {
        case forward
        /// Keep it until the channel is writable again.
        case hold
    }

    package private(set) var timer: Timer = .none
    package private(set) var holding = false
    package private(set) var readPending = false
    /// A response's end is queued and not yet written to the socket: the keep-alive time starts once it is.
    package private(set) var awaitingFlush = false

    package init() {}

    /// The handler was added: the head must follow in time.
    package mutating func started() -> Timer {
        self.timer = .header
        return .header
    }

    /// A request head arrived: no deadline while it is served; held when the peer is not reading,
    /// which it then must start within the stall time (``timer`` is ``Timer/stall``).
    package mutating func headReceived(writable: Bool) -> Inbound {
        self.awaitingFlush = false  // the next request began: its own response decides what follows
        if self.holding || !writable {
            self.holding = true
            self.timer = .stall
            return .hold
        }
        self.timer = .none
        return .forward
    }

    /// The channel stopped being writable: the peer does not read what is written. While nothing
    /// else is timed (a response is being written), its stall time starts; true to arm it.
    package mutating func becameUnwritable() -> Bool {
        guard self.timer == .none else { return false }
        self.timer = .stall
        return true
    }

    /// A body part or the end arrived.
    package func partReceived() -> Inbound { self.holding ? .hold : .forward }

    /// A response's end was queued. The keep-alive time starts once it is written (``responseFlushed()``);
    /// until then a peer that stops reading has the stall time, as mid-response. Before, the keep-alive
    /// timer started here and closed the connection with the response's last bytes unsent when the peer
    /// paused longer than it at the very end (helper-90).
    package mutating func responseEnded() {
        self.awaitingFlush = true
    }

    /// The ended response is written: the next head must arrive within the keep-alive time (nil when
    /// the next request already began, pipelined, or the connection closed).
    package mutating func responseFlushed() -> Timer? {
        guard self.awaitingFlush else { return nil }
        self.awaitingFlush = false
        self.timer = .keepAlive
        return .keepAlive
    }

    /// The pipeline asks to read; true when the read goes through now.
    package mutating func readRequested(writable: Bool) -> Bool {
        if self.holding || !writable {
            self.readPending = true
            return false
        }
        return true
    }

    /// The channel became writable: whether to release held parts, whether to read, and whether
    /// the stall time stops (the peer reads again).
    package mutating func becameWritable() -> (release: Bool, read: Bool, stallEnded: Bool) {
        let release = self.holding
        self.holding = false
        let read = self.readPending
        self.readPending = false
        let stallEnded = self.timer == .stall
        if stallEnded { self.timer = .none }
        return (release, read, stallEnded)
    }

    /// The timer fired: close unless it was cancelled meanwhile.
    package func timerFired(_ which: Timer) -> Bool { which != .none && which == self.timer }

    /// The connection closed.
    package mutating func closed() {
        self.awaitingFlush = false
        self.timer = .none
        self.holding = false
        self.readPending = false
    }
}
