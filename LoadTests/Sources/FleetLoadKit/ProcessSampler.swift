import Foundation
import Synchronization

/// Samples a process's CPU time and resident set once a second from `/proc/PID` (the gateway's,
/// and the harness's own, so a report says who was busy).
package final class ProcessSampler: Sendable {
    /// One sample: seconds since the sampler started, CPU share of one core over the last interval, RSS bytes.
    package struct Sample: Sendable, Codable, Hashable {
        package var t: Double
        package var cpu: Double
        package var rss: Int

        package init(t: Double, cpu: Double, rss: Int) {
            self.t = t
            self.cpu = cpu
            self.rss = rss
        }
    }

    let pid: Int32
    private let samples = Mutex<[Sample]>([])

    package init(pid: Int32) { self.pid = pid }

    /// Everything sampled so far.
    package var all: [Sample] { self.samples.withLock { $0 } }

    /// CPU seconds (user + system) the process has used, from `/proc/PID/stat`.
    package static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3, utime 14, stime 15 (1-based over the whole line).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// `VmRSS` of the process, bytes.
    package static func residentBytes(pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { $0.split(separator: " ").dropFirst().first }.flatMap { Int($0) }.map { $0 * 1024 }
    }

    /// The 1-minute load average.
    package static var loadAverage: [Double] {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return [] }
        return text.split(separator: " ").prefix(3).compactMap { Double($0) }
    }

    /// Samples every `interval` until cancelled.
    package func run(interval: Duration = .seconds(1)) async {
        let clock = ContinuousClock()
        let start = clock.now
        var last = (clock.now, Self.cpuSeconds(pid: self.pid) ?? 0)
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            let now = clock.now
            guard let cpu = Self.cpuSeconds(pid: self.pid), let rss = Self.residentBytes(pid: self.pid) else { return }
            let wall = (now - last.0).seconds
            let sample = Sample(t: (now - start).seconds, cpu: wall > 0 ? (cpu - last.1) / wall : 0, rss: rss)
            self.samples.withLock { $0.append(sample) }
            last = (now, cpu)
        }
    }
}

extension Duration {
    /// The duration in seconds.
    package var seconds: Double { Double(self.components.seconds) + Double(self.components.attoseconds) / 1e18 }
}
