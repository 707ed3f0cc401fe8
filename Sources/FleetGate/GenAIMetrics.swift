public import CoreMetrics
import FleetProtocol
import Synchronization

/// The OpenTelemetry GenAI metrics, in Prometheus form, for every completion the gateway serves.
///
/// Names and buckets follow the semantic conventions (`gen_ai.server.time_to_first_token`,
/// `gen_ai.server.time_per_output_token`, `gen_ai.server.request.duration`, and
/// `gen_ai.client.token.usage`, the gateway being the client of the car or central server that
/// generated the tokens). Labels: `gen_ai_operation_name`, `gen_ai_request_model`, and the fleet's
/// `route` (`car`, `central`, `replica`) and `zone`. Models come from requests the gateway served (an unknown
/// model is refused before dispatch) and are capped at ``maxSeries`` label sets; beyond that the
/// model is counted as `other`, so no label grows without bound.
public final class GenAIMetrics: Sendable {
    /// Label sets kept before new models fold into `other`.
    static let maxSeries = 512
    /// `gen_ai.server.time_to_first_token` explicit bucket boundaries (seconds).
    public static let ttftBuckets: [Duration] = [
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ].map { .milliseconds(Int64($0 * 1000)) }
    /// `gen_ai.server.time_per_output_token` bucket boundaries (seconds).
    public static let tpotBuckets: [Duration] = [
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    ].map { .milliseconds(Int64($0 * 1000)) }
    /// `gen_ai.server.request.duration` bucket boundaries (seconds).
    public static let durationBuckets: [Duration] = [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ].map { .milliseconds(Int64($0 * 1000)) }
    /// `gen_ai.client.token.usage` bucket boundaries (tokens).
    public static let tokenBuckets: [Double] = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144]

    /// Metric names, for the factory's per-metric buckets.
    public enum Name {
        public static let ttft = "gen_ai_server_time_to_first_token_seconds"
        public static let tpot = "gen_ai_server_time_per_output_token_seconds"
        public static let duration = "gen_ai_server_request_duration_seconds"
        public static let tokens = "gen_ai_client_token_usage"
    }

    /// `gen_ai.operation.name`: `chat` for chat completions and the Responses API, `text_completion` for
    /// `/v1/completions` (helper-108: every request was `chat`).
    enum Operation: String {
        case chat
        case textCompletion = "text_completion"
    }

    struct Key: Hashable {
        var operation: String
        var model, route, zone: String
    }

    struct Series {
        var ttft, tpot, duration: Timer
        var inputTokens, outputTokens: Recorder
    }

    private let factory: any MetricsFactory
    private let series = Mutex<[Key: Series]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
        // Registered at start with empty labels (in Prometheus an empty label is an absent one), so
        // every family is in /metrics before the first request, for dashboards, alerts and their test.
        _ = self.series(Key(operation: "", model: "", route: "", zone: ""))
    }

    private func series(_ key: Key) -> Series {
        self.series.withLock { all in
            if let s = all[key] { return s }
            var key = key
            if all.count >= Self.maxSeries {
                key.model = "other"
                if let s = all[key] { return s }
            }
            let labels = [
                ("gen_ai_operation_name", key.operation), ("gen_ai_request_model", key.model),
                ("route", key.route), ("zone", key.zone),
            ]
            let s = Series(
                ttft: Timer(
                    label: Name.ttft, dimensions: labels, preferredDisplayUnit: .seconds, factory: self.factory),
                tpot: Timer(
                    label: Name.tpot, dimensions: labels, preferredDisplayUnit: .seconds, factory: self.factory),
                duration: Timer(
                    label: Name.duration, dimensions: labels, preferredDisplayUnit: .seconds, factory: self.factory),
                inputTokens: Recorder(
                    label: Name.tokens, dimensions: labels + [("gen_ai_token_type", "input")], aggregate: true,
                    factory: self.factory),
                outputTokens: Recorder(
                    label: Name.tokens, dimensions: labels + [("gen_ai_token_type", "output")], aggregate: true,
                    factory: self.factory))
            all[key] = s
            return s
        }
    }

    /// Records one served completion.
    /// - Parameters:
    ///   - firstTokenNanoseconds: from the request's arrival to its first token (nil: none was sent).
    ///   - durationNanoseconds: from arrival to the end of the answer.
    ///   - usage: the answer's usage as the client was given it: the upstreams' reported counts within the
    ///     request's bounds, the gateway's estimates where none was reported (``SSERelay/usage``;
    ///     helper-108: the prompt was always the gateway's estimate).
    ///   - deliveredTokens: the tokens the client received, for the time per output token (0: not measured,
    ///     a whole answer from central).
    func record(
        operation: Operation, model: String, route: String, zone: String, firstTokenNanoseconds: Int64?,
        durationNanoseconds: Int64, usage: Usage, deliveredTokens: Int
    ) {
        let s = self.series(Key(operation: operation.rawValue, model: model, route: route, zone: zone))
        s.duration.recordNanoseconds(durationNanoseconds)
        s.inputTokens.record(usage.promptTokens)
        s.outputTokens.record(usage.completionTokens)
        guard let first = firstTokenNanoseconds else { return }
        s.ttft.recordNanoseconds(first)
        // Time per output token after the first (the convention's definition).
        if deliveredTokens > 1 {
            s.tpot.recordNanoseconds((durationNanoseconds - first) / Int64(deliveredTokens - 1))
        }
    }
}
