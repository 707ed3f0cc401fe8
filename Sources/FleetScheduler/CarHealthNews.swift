/// What a car's outcome changed that an operator should hear of, for the gateway's log.
///
/// A car whose runtime fails every job is backed off and retried for ever (``FleetRegistry/finish(_:_:now:)``),
/// and neither the gateway nor the agent said so: an operator could not tell which car failed
/// (helper-131). One line when its failures in a row reach 3, 10, 30, 100 and every 100 after (its
/// back-off then caps near 30 s, so about a line an hour), and one when a success ends a run of at least 3.
public enum CarHealthNews: Sendable, Equatable {
    /// Its failures in a row reached a mark; it is backed off this long.
    case failing(inARow: Int, backoffSeconds: Double)
    /// A job succeeded after this many failures in a row.
    case recovered(afterFailures: Int)

    /// The failures in a row worth the first line.
    public static let firstMark = 3

    /// Whether `count` failures in a row is a mark worth a line.
    public static func marks(_ count: Int) -> Bool {
        switch count {
        case Self.firstMark, 10, 30: true
        default: count >= 100 && count % 100 == 0
        }
    }
}
