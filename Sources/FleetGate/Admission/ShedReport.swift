import NIOCore

/// When an overloaded event loop says so in the log. Its refusals (503 `server_overloaded`, taken
/// before anything of the request is read) get no `Request served` line each: at twice capacity
/// that would be tens of thousands of lines a second, written by the loop that is already behind.
/// They are counted (`fleet_requests_shed_total`), and an operator reading the log sees an episode
/// as a few lines: one when the loop starts refusing, one at most every ``interval`` while it goes
/// on (the refusals since the line before), and one when it has refused nothing for ``quiet``.
///
/// A value type fed by its ``EventLoopLoad``: ``refused()`` on each refusal (a counter, no clock),
/// ``measured(at:)`` at each of the loop's measurements, which says which line, if any, to write.
struct ShedReport {
    /// The most often a loop writes a line while it goes on refusing.
    static let interval = TimeAmount.seconds(10)
    /// How long a loop refuses nothing before its episode is over: as long as ``interval``, so a loop
    /// that goes in and out of overload writes at most about two lines each interval (helper-98: with
    /// a second, each burst a second apart was a line to start it and one to end it).
    static let quiet = TimeAmount.seconds(10)

    enum Line: Equatable {
        /// The loop began refusing: `refused` since its last measurement, the last for `reason`.
        case started(refused: Int, reason: LoadShedder.Reason)
        /// Still refusing: `refused` over the `over` since the line before, the last for `reason`.
        case continuing(refused: Int, over: TimeAmount, reason: LoadShedder.Reason)
        /// Nothing refused for ``quiet``: the episode refused `refused` in all, from its first
        /// refusal to its last over `over`.
        case ended(refused: Int, over: TimeAmount)
    }

    /// Refusals since the last measurement.
    private var sinceMeasurement = 0
    /// Refusals measured since the last line.
    private var sinceLine = 0
    private var total = 0
    /// The last refusal's reason.
    private var reason = LoadShedder.Reason.lag
    private typealias Episode = (began: NIODeadline, lastLine: NIODeadline, lastRefusal: NIODeadline)
    private var episode: Episode?

    /// A request was refused for `reason`.
    mutating func refused(_ reason: LoadShedder.Reason) {
        self.sinceMeasurement += 1
        self.reason = reason
    }

    /// The loop stopped measuring (shutdown): an episode under way ends here, with its total so far
    /// (helper-98: a gateway stopped while overloaded wrote no end line).
    mutating func stopped() -> Line? {
        guard let episode = self.episode else { return nil }
        self.total += self.sinceMeasurement
        self.sinceMeasurement = 0
        return self.end(episode)
    }

    /// The episode's end line; the report starts afresh.
    private mutating func end(_ episode: Episode) -> Line {
        let line = Line.ended(refused: self.total, over: episode.lastRefusal - episode.began)
        self.episode = nil
        self.sinceLine = 0
        self.total = 0
        return line
    }

    /// The loop measured itself at `now`: the line to write, if any.
    mutating func measured(at now: NIODeadline) -> Line? {
        let refused = self.sinceMeasurement
        self.sinceMeasurement = 0
        guard var episode = self.episode else {
            guard refused > 0 else { return nil }
            self.episode = (began: now, lastLine: now, lastRefusal: now)
            self.total = refused
            return .started(refused: refused, reason: self.reason)
        }
        guard refused > 0 else {
            guard now - episode.lastRefusal >= Self.quiet else { return nil }
            return self.end(episode)
        }
        episode.lastRefusal = now
        self.sinceLine += refused
        self.total += refused
        var line: Line?
        if now - episode.lastLine >= Self.interval {
            line = .continuing(refused: self.sinceLine, over: now - episode.lastLine, reason: self.reason)
            episode.lastLine = now
            self.sinceLine = 0
        }
        self.episode = episode
        return line
    }
}
