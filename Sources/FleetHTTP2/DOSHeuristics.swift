package import NIOCore

/// Decides when a peer's frames amount to abuse.
///
/// Shaped after swift-nio-http2's `DOSHeuristics`: a pure value that takes `received…(at:)` events and answers what to do, with the clock
/// injected (the handler passes the time its event loop read for the current read; tests pass
/// whatever they like). The handler acts on ``Verdict/enhanceYourCalm`` with GOAWAY
/// `ENHANCE_YOUR_CALM` (RFC 9113 §7).
///
/// Counted:
/// 1. RST_STREAM frames per second (rapid reset, CVE-2023-44487);
/// 2. PING and SETTINGS frames per second (floods that make us queue ACKs);
/// 3. CONTINUATION frames after one HEADERS frame (CVE-2024-27316: an endless header block);
/// 4. header lists over SETTINGS_MAX_HEADER_LIST_SIZE per minute (an HPACK bomb: the handler stops
///    decoding the block and resets the stream; a peer that keeps doing it is cut off);
/// 5. frames that carry nothing for us, per second: empty DATA frames without END_STREAM
///    (CVE-2019-9518), WINDOW_UPDATE and PRIORITY frames (helper-85: 16–20 million a second on one
///    connection held a core, and none was ever refused). Envoy bounds the same three.
///
/// A DATA frame with data is not counted: nothing here runs for it.
package struct DOSHeuristics {
    /// What the handler should do after an event.
    package enum Verdict: Equatable, Sendable {
        /// Carry on.
        case permitted
        /// Terminate the connection with GOAWAY `ENHANCE_YOUR_CALM`.
        case enhanceYourCalm
    }

    private var resets: RateLimit
    private var pings: RateLimit
    private var settings: RateLimit
    private var oversizedHeaderLists: RateLimit
    private var emptyDataFrames: RateLimit
    private var windowUpdates: RateLimit
    private var priorities: RateLimit
    private let maxContinuationFrames: Int
    private var continuationFrames = 0

    /// Creates the heuristics with the limits of `configuration`.
    /// - Parameter configuration: ``HTTP2Configuration/maxResetsPerSecond``,
    ///   ``HTTP2Configuration/maxPingsPerSecond``, ``HTTP2Configuration/maxSettingsPerSecond``,
    ///   ``HTTP2Configuration/maxContinuationFrames`` and
    ///   ``HTTP2Configuration/maxOversizedHeaderListsPerMinute``,
    ///   ``HTTP2Configuration/maxEmptyDataFramesPerSecond``, ``HTTP2Configuration/maxWindowUpdatesPerSecond``
    ///   and ``HTTP2Configuration/maxPrioritiesPerSecond`` are read.
    package init(configuration: HTTP2Configuration) {
        self.resets = RateLimit(maximum: configuration.maxResetsPerSecond, window: .seconds(1))
        self.pings = RateLimit(maximum: configuration.maxPingsPerSecond, window: .seconds(1))
        self.settings = RateLimit(maximum: configuration.maxSettingsPerSecond, window: .seconds(1))
        self.oversizedHeaderLists = RateLimit(
            maximum: configuration.maxOversizedHeaderListsPerMinute, window: .seconds(60))
        self.maxContinuationFrames = configuration.maxContinuationFrames
        self.emptyDataFrames = RateLimit(maximum: configuration.maxEmptyDataFramesPerSecond, window: .seconds(1))
        self.windowUpdates = RateLimit(maximum: configuration.maxWindowUpdatesPerSecond, window: .seconds(1))
        self.priorities = RateLimit(maximum: configuration.maxPrioritiesPerSecond, window: .seconds(1))
    }

    /// A RST_STREAM frame arrived at `now`, or the peer sent a frame that makes us reset a stream.
    package mutating func receivedReset(at now: NIODeadline) -> Verdict { self.resets.record(at: now) }

    /// A PING frame (not an ACK) arrived at `now`.
    package mutating func receivedPing(at now: NIODeadline) -> Verdict { self.pings.record(at: now) }

    /// A SETTINGS frame (not an ACK) arrived at `now`.
    package mutating func receivedSettings(at now: NIODeadline) -> Verdict { self.settings.record(at: now) }

    /// A DATA frame without data (padding aside) and without END_STREAM arrived at `now`.
    package mutating func receivedEmptyData(at now: NIODeadline) -> Verdict { self.emptyDataFrames.record(at: now) }

    /// A WINDOW_UPDATE frame arrived at `now`.
    package mutating func receivedWindowUpdate(at now: NIODeadline) -> Verdict { self.windowUpdates.record(at: now) }

    /// A PRIORITY frame arrived at `now`.
    package mutating func receivedPriority(at now: NIODeadline) -> Verdict { self.priorities.record(at: now) }

    /// A header block went over the header-list limit at `now` (its decoding was stopped).
    package mutating func receivedOversizedHeaderList(at now: NIODeadline) -> Verdict {
        self.oversizedHeaderLists.record(at: now)
    }

    /// A HEADERS frame began: a new header block, so its CONTINUATION count starts again.
    package mutating func receivedHeadersFrame() {
        self.continuationFrames = 0
    }

    /// A CONTINUATION frame began; more than ``HTTP2Configuration/maxContinuationFrames`` after one
    /// HEADERS frame is a flood.
    package mutating func receivedContinuationFrame() -> Verdict {
        self.continuationFrames += 1
        return self.continuationFrames > self.maxContinuationFrames ? .enhanceYourCalm : .permitted
    }

    /// Counts events in a fixed window that restarts with the first event after it ends.
    struct RateLimit {
        let maximum: Int
        let window: TimeAmount
        private var windowStart = NIODeadline.distantPast
        private var count = 0

        init(maximum: Int, window: TimeAmount) {
            self.maximum = maximum
            self.window = window
        }

        mutating func record(at now: NIODeadline) -> Verdict {
            if now - self.windowStart >= self.window {
                self.windowStart = now
                self.count = 0
            }
            self.count += 1
            return self.count > self.maximum ? .enhanceYourCalm : .permitted
        }
    }
}
