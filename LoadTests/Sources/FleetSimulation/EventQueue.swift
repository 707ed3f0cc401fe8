import FleetProtocol
import Foundation
import HeapModule

/// Timed events in swift-collections' `Heap`; ties keep insertion order, so runs are deterministic.
struct EventQueue<Payload> {
    private struct Entry: Comparable {
        var time: Double
        var sequence: UInt64
        var payload: Payload
        static func < (a: Self, b: Self) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
        static func == (a: Self, b: Self) -> Bool { (a.time, a.sequence) == (b.time, b.sequence) }
    }

    private var heap = Heap<Entry>()
    private var sequence: UInt64 = 0

    var isEmpty: Bool { self.heap.isEmpty }

    mutating func push(_ time: Double, _ payload: Payload) {
        self.sequence += 1
        self.heap.insert(Entry(time: time, sequence: self.sequence, payload: payload))
    }

    mutating func pop() -> (time: Double, payload: Payload)? {
        self.heap.popMin().map { ($0.time, $0.payload) }
    }
}

/// Seeded draws for the simulator.
struct Draw {
    var generator: SplitMix64

    init(seed: UInt64) { self.generator = SplitMix64(seed: SplitMix64.mix(seed)) }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(self.generator.next() >> 11) * 0x1.0p-53 }

    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * self.uniform() }

    mutating func exponential(mean: Double) -> Double { -mean * log(max(1e-300, 1 - self.uniform())) }

    mutating func normal() -> Double {
        let u1 = max(1e-300, self.uniform())
        let u2 = self.uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    mutating func lognormal(median: Double, sigma: Double) -> Double { median * exp(sigma * self.normal()) }

    mutating func pick<T>(_ options: [(T, Double)]) -> T {
        var r = self.uniform() * options.reduce(0) { $0 + $1.1 }
        for (value, weight) in options {
            if r < weight { return value }
            r -= weight
        }
        return options[options.count - 1].0
    }
}
