public import CoreMetrics

/// A duration histogram recorded as seconds in a `Double` histogram: for a timer recorded per
/// relayed token, `fleet_inter_token_seconds` (issue #19).
///
/// swift-prometheus's `Histogram<Duration>` walks every bucket comparing `Duration`s through calls
/// into the standard library (~650 instructions a record with its 11 buckets under callgrind, 31
/// records in a 32-token stream); `Histogram<Double>` compares inline (~300). The exposition is the
/// same: a histogram named `label` whose `le` bounds print as the `Duration` ones did (`0.005`, `1.0`,
/// `10.0`), with a sum in seconds. The factory must give the recorder ``buckets`` (``Gateway`` sets
/// them for ``GatewayMetrics/Name/interToken``): its default value buckets are not seconds.
public struct SecondsHistogram: Sendable {
    /// swift-prometheus's default duration buckets (5 ms … 10 s), in seconds.
    public static let buckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    /// The factory's aggregating recorder, called directly: `Recorder.record(_:)` is generic over
    /// `BinaryFloatingPoint` and was left unspecialized: a generic conversion, ~350 instructions a record.
    let handler: any RecorderHandler

    init(label: String, factory: any MetricsFactory) {
        self.handler = factory.makeRecorder(label: label, dimensions: [], aggregate: true)
    }

    /// Records a duration.
    public func recordNanoseconds(_ nanoseconds: Int64) {
        self.handler.record(Double(nanoseconds) / 1e9)
    }
}
