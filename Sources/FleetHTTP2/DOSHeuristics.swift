package import NIOCore

/// Decides when a peer's frames amount to abuse, shaped after swift-nio-http2's `DOSHeuristics`:
/// a pure value that counts events in time windows and answers what to do, with the clock
/// injected (the handler passes its event loop's `now`; tests pass whatever they like).
///
/// Counted: RST_STREAM (rapid reset, CVE-2023-44487), PING and SETTINGS floods, and header lists
/// over SETTINGS_MAX_HEADER_LIST_SIZE (an HPACK bomb: the handler stops decoding the block and
/// resets the stream; a peer that keeps doing it gets GOAWAY `ENHANCE_YOUR_CALM`).
package struct DOSHeuristics {
    /// What the handler should do after an event.
    package enum Verdict: Equatable {
        case permitted
        /// Terminate the connection with GOAWAY `ENHANCE_YOUR_CALM`.
        case enhanceYourCalm
    }

    /// How many events a window allows.
    struct Limit: Equatable {
        var maximum: Int
        var window: TimeAmount
    }

    private var resets: RateLimit
    private var pings: RateLimit
    private var settings: RateLimit
    private var oversizedHeaderLists: RateLimit

    package init(configuration: HTTP2Configuration) {
        self.resets = RateLimit(Limit(maximum: configuration.maxResetsPerSecond, window: .seconds(1)))
        self.pings = RateLimit(Limit(maximum: configuration.maxPingsPerSecond, window: .seconds(1)))
        self.settings = RateLimit(Limit(maximum: configuration.maxSettingsPerSecond, window: .seconds(1)))
        self.oversizedHeaderLists = RateLimit(
            Limit(maximum: configuration.maxOversizedHeaderListsPerMinute, window: .seconds(60)))
    }

    /// A RST_STREAM frame arrived.
    package mutating func resetReceived(now: NIODeadline) -> Verdict { self.resets.record(now: now) }
    /// A PING (not an ACK) arrived.
    package mutating func pingReceived(now: NIODeadline) -> Verdict { self.pings.record(now: now) }
    /// A SETTINGS frame (not an ACK) arrived.
    package mutating func settingsReceived(now: NIODeadline) -> Verdict { self.settings.record(now: now) }
    /// A header block went over the header-list limit (its decoding was stopped).
    package mutating func headerListTooLarge(now: NIODeadline) -> Verdict { self.oversizedHeaderLists.record(now: now) }

    /// Counts events in a fixed window that restarts with the first event after it ends.
    struct RateLimit {
        let limit: Limit
        private var windowStart = NIODeadline.distantPast
        private var count = 0

        init(_ limit: Limit) { self.limit = limit }

        mutating func record(now: NIODeadline) -> Verdict {
            if now - self.windowStart >= self.limit.window {
                self.windowStart = now
                self.count = 0
            }
            self.count += 1
            return self.count > self.limit.maximum ? .enhanceYourCalm : .permitted
        }
    }
}
