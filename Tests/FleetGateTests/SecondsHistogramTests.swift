import FleetProtocol
import Metrics
import Prometheus
import Testing

@testable import FleetGate

@Suite("SecondsHistogram")
struct SecondsHistogramTests {
    /// `name`'s exposition lines, with the sum apart (`Double` and `Duration` sums print differently).
    static func exposition(_ registry: PrometheusCollectorRegistry, _ name: String) -> (lines: [String], sum: Double) {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
            .filter { $0.hasPrefix(name) || $0.hasPrefix("# TYPE \(name)") }
        let sum = lines.first { $0.hasPrefix("\(name)_sum") }.flatMap { Double($0.split(separator: " ").last!) } ?? -1
        return (lines.filter { !$0.hasPrefix("\(name)_sum") }, sum)
    }

    @Test("Exported as the Duration histogram of a Timer with swift-prometheus's default buckets was")
    func sameExposition() {
        let timerRegistry = PrometheusCollectorRegistry()
        let timer = Timer(
            label: "t_seconds", dimensions: [], preferredDisplayUnit: .seconds,
            factory: PrometheusMetricsFactory(registry: timerRegistry))
        let secondsRegistry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: secondsRegistry)
        factory.valueHistogramBuckets["t_seconds"] = SecondsHistogram.buckets
        let seconds = SecondsHistogram(label: "t_seconds", factory: factory)
        #expect(
            SecondsHistogram.buckets.map { Duration.milliseconds(Int64($0 * 1000)) }
                == PrometheusMetricsFactory().defaultDurationHistogramBuckets)
        var random = SplitMix64(seed: 7)
        var observed: [Int64] = [0, 5_000_000, 5_000_001, 10_000_000_000, 20_000_000_000]
        for _ in 0..<200 { observed.append(Int64(random.next() % 12_000_000_000) >> Int(random.next() % 20)) }
        for nanoseconds in observed {
            timer.recordNanoseconds(nanoseconds)
            seconds.recordNanoseconds(nanoseconds)
        }
        let expected = Self.exposition(timerRegistry, "t_seconds")
        let got = Self.exposition(secondsRegistry, "t_seconds")
        #expect(got.lines == expected.lines)
        #expect(got.lines.count == 1 + 12 + 1)  // TYPE, 11 bounds and +Inf, count
        #expect(abs(got.sum - expected.sum) < 1e-6 && expected.sum > 0)
    }
}
