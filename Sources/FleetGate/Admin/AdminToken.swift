import Synchronization

/// The admin bearer token (`admin.tokenFile`), or the dashboard's generated one: replaced in place when
/// an operator rotates the file, so a token that leaked stops working without a restart (which would
/// drop every stream the gateway relays). Each replacement starts a new generation, and the dashboard's
/// sessions made under an older one end with it (``DashboardSessions``).
package final class AdminToken: Sendable {
    private let state: Mutex<(bytes: [UInt8], generation: Int)>

    init(_ bytes: [UInt8]) {
        self.state = Mutex((bytes, 0))
    }

    /// The token in use.
    package var bytes: [UInt8] { self.state.withLock { $0.bytes } }

    /// How many times it was replaced.
    var generation: Int { self.state.withLock { $0.generation } }

    /// Whether `presented` is the token in use (compared in constant time).
    func matches(_ presented: [UInt8]) -> Bool { AdminGuard.constantTimeEqual(presented, self.bytes) }

    /// Installs `bytes`, a new generation when they differ from the token in use; returns whether they did.
    @discardableResult
    func replace(with bytes: [UInt8]) -> Bool {
        self.state.withLock { state in
            guard state.bytes != bytes else { return false }
            state = (bytes, state.generation + 1)
            return true
        }
    }
}
