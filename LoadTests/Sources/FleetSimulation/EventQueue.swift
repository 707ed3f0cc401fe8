import FleetProtocol
import Foundation

/// A binary min-heap of timed events; ties keep insertion order, so runs are deterministic.
struct EventQueue<Payload> {
    private struct Entry {
        var time: Double
        var sequence: UInt64
        var payload: Payload
        func before(_ other: Entry) -> Bool { (self.time, self.sequence) < (other.time, other.sequence) }
    }

    private var heap: [Entry] = []
    private var sequence: UInt64 = 0

    var isEmpty: Bool { self.heap.isEmpty }

    mutating func push(_ time: Double, _ payload: Payload) {
        self.sequence += 1
        self.heap.append(Entry(time: time, sequence: self.sequence, payload: payload))
        var i = self.heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard self.heap[i].before(self.heap[parent]) else { break }
            self.heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (time: Double, payload: Payload)? {
        guard !self.heap.isEmpty else { return nil }
        let top = self.heap[0]
        let last = self.heap.removeLast()
        if !self.heap.isEmpty {
            self.heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1
                let r = l + 1
                var m = i
                if l < self.heap.count && self.heap[l].before(self.heap[m]) { m = l }
                if r < self.heap.count && self.heap[r].before(self.heap[m]) { m = r }
                if m == i { break }
                self.heap.swapAt(i, m)
                i = m
            }
        }
        return (top.time, top.payload)
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
