import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// NIO's report after every event-loop tick, passed to that loop's ``EventLoopLoad``: how long the
/// tick ran and how long the loop slept before it — the loop's utilization, which
/// ``LoadShedder`` sheds on. The group is created with this delegate before the loads exist, so
/// they are attached afterwards (``attach(_:)``); ticks before that are not counted.
final class EventLoopTicks: NIOEventLoopMetricsDelegate, Sendable {
    private let loads = NIOLockedValueBox<[ObjectIdentifier: EventLoopLoad]>([:])

    func attach(_ loads: EventLoopLoads) {
        self.loads.withLockedValue { $0 = loads.byLoop }
    }

    /// Called on the loop that ticked, after the tick.
    func processedTick(info: NIOEventLoopTickInfo) {
        guard let load = self.loads.withLockedValue({ $0[info.eventLoopID] }) else { return }
        load.tick(busy: info.endTime - info.startTime, slept: info.sleepTime)
    }
}
