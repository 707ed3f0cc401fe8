import Foundation
import Synchronization

/// Logins to the admin dashboard: one admin token exchanged once for a session cookie
/// (`HttpOnly; SameSite=Strict`), so the token does not stay in the browser's address bar or history.
///
/// The token is the admin token (`admin.tokenFile`) when one is configured, otherwise random per
/// process and left in a private file whose path the gateway logs at start (``DashboardTokenFile``).
/// Tokens and sessions are compared in constant time; at most ``maxSessions`` live, each for
/// ``sessionLifetime`` seconds, and none beyond the admin token it was made with: a rotated token ends
/// every session its predecessor opened.
public final class DashboardSessions: Sendable {
    /// The cookie's name.
    static let cookie = "fleet_dashboard"
    static let maxSessions = 64
    static let sessionLifetime: Double = 12 * 3600

    /// The admin token that logs in, as it is now.
    public var token: String { String(decoding: self.adminToken.bytes, as: UTF8.self) }
    /// Whether ``token`` was generated (and so must be shown to the operator once).
    public let generated: Bool
    private let adminToken: AdminToken
    /// Each session with its expiry and the admin token's generation it was opened under.
    private let sessions = Mutex<[(id: [UInt8], expires: Double, generation: Int)]>([])

    /// - Parameter token: the admin token (`admin.tokenFile`, a reload may replace it); nil generates one.
    init(token: AdminToken?) {
        self.adminToken = token ?? AdminToken(Array(Self.random().utf8))
        self.generated = token == nil
    }

    private static func random() -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(rng.next() as UInt64, radix: 16) }.joined()
    }

    /// Exchanges the token for a new session id, or nil.
    func login(token: String, now: Double = Date().timeIntervalSince1970) -> String? {
        let generation = self.adminToken.generation
        guard self.adminToken.matches(Array(token.utf8)) else { return nil }
        let id = Self.random()
        self.sessions.withLock { sessions in
            sessions.removeAll { $0.expires < now || $0.generation != generation }
            if sessions.count >= Self.maxSessions { sessions.removeFirst() }
            sessions.append((Array(id.utf8), now + Self.sessionLifetime, generation))
        }
        return id
    }

    /// Whether a `Cookie` header carries a live session.
    func isValid(cookieHeader: String?, now: Double = Date().timeIntervalSince1970) -> Bool {
        guard let header = cookieHeader else { return false }
        let values = header.split(separator: ";").compactMap { part -> [UInt8]? in
            let pair = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            return pair.count == 2 && pair[0] == Self.cookie ? Array(pair[1].utf8) : nil
        }
        guard !values.isEmpty else { return false }
        let generation = self.adminToken.generation
        let live = self.sessions.withLock { $0.filter { $0.expires >= now && $0.generation == generation }.map(\.id) }
        return values.contains { value in live.contains { AdminGuard.constantTimeEqual($0, value) } }
    }
}
