public import ServiceLifecycle

/// In-process cars as one `Service`: the demo's fleet and the test fixture's, built the same way.
///
/// Cars can be added before or while it runs; each runs until graceful shutdown, when it drains
/// (announces it on the status stream, GOAWAY, lets its jobs finish) like a real agent on SIGTERM.
public final class CarPool: Service, Sendable {
    private let additions: AsyncStream<TunnelClient>
    private let continuation: AsyncStream<TunnelClient>.Continuation

    /// An empty pool.
    public init() {
        (self.additions, self.continuation) = AsyncStream.makeStream(of: TunnelClient.self)
    }

    /// Starts `tunnel` (at once when the pool runs, otherwise when it starts).
    public func add(_ tunnel: TunnelClient) { self.continuation.yield(tunnel) }

    /// Runs every car added until graceful shutdown; returns when all have drained.
    public func run() async throws {
        await withDiscardingTaskGroup { group in
            for await tunnel in self.additions.cancelOnGracefulShutdown() {
                group.addTask { try? await tunnel.run() }
            }
        }
    }
}
