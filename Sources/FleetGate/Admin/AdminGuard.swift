import Crypto
import FleetConfiguration
import Foundation
import HTTPTypes

/// Who may use the admin API (DESIGN.md, "Admin and probes"; issue #18 row 10).
///
/// Rules, checked before any admin handler runs:
/// 1. probes and metrics (`/healthz`, `/readyz`, `/metrics`) are read-only: GET or HEAD, no
///    token, any Host (kubelet and Prometheus dial the pod address);
/// 2. everything else needs a `Host` that is loopback, the admin bind host or an allowed name,
///    and no `Origin` naming another host (DNS rebinding, cross-site requests from a browser);
/// 3. with a token file configured, `Authorization: Bearer <token>` (compared in constant time);
/// 4. a request that changes state is a POST with `Content-Type: application/json` — a browser
///    cannot send that cross-site without a CORS preflight, which this API never grants.
struct AdminGuard: Sendable {
    /// Why a request was refused.
    enum Refusal: Equatable {
        case methodNotAllowed, forbiddenHost, forbiddenOrigin, unauthorized, unsupportedMediaType
    }

    static let probes: Set<String> = ["/healthz", "/readyz", "/metrics"]

    /// The bearer token, when `admin.tokenFile` is set; a reload replaces it (``GatewayReloader``).
    let token: AdminToken?
    let hosts: Set<String>

    /// - Throws: ``ConfigurationError`` naming `admin.tokenFile` and the file when it cannot be read or
    ///   holds fewer than 16 bytes.
    init(tokenFile: String?, bindHost: String, allowedHosts: [String]) throws {
        self.token = try tokenFile.map { AdminToken(Array(try Self.readToken($0).utf8)) }
        self.hosts = Set((["127.0.0.1", "localhost", "[::1]", bindHost] + allowedHosts).map { $0.lowercased() })
    }

    /// The token in `file`, trimmed.
    /// - Throws: ``ConfigurationError`` naming `admin.tokenFile` when it cannot be read or is short.
    static func readToken(_ file: String) throws -> String {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw ConfigurationError(.unreadableFile, key: "admin.tokenFile", value: file, "cannot read the file")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.utf8.count >= 16 else {
            throw ConfigurationError(
                .invalidValue, key: "admin.tokenFile", value: file,
                "holds \(token.utf8.count) bytes; the admin token needs at least 16 (e.g. `openssl rand -hex 32`)")
        }
        return token
    }

    /// Nil when `request` may go on; otherwise why not.
    /// - Parameter session: the request carries a dashboard session (or is its login), which stands in
    ///   for the bearer token (#17); Host, Origin and method rules still apply.
    func check(_ request: HTTPRequest, path: String, session: Bool = false) -> Refusal? {
        if Self.probes.contains(path) {
            return request.method == .get || request.method == .head ? nil : .methodNotAllowed
        }
        guard let authority = request.authority, self.hosts.contains(Self.hostName(authority)) else {
            return .forbiddenHost
        }
        if let origin = request.headerFields[.origin] {
            guard let url = URL(string: origin), let host = url.host(percentEncoded: false),
                self.hosts.contains(host.contains(":") ? "[\(host.lowercased())]" : host.lowercased())
            else { return .forbiddenOrigin }
        }
        if let token = self.token, !session {
            guard let presented = request.headerFields[.authorization]?.bearerToken,
                token.matches(Array(presented))
            else { return .unauthorized }
        }
        if request.method != .get && request.method != .head {
            guard request.method == .post else { return .methodNotAllowed }
            let type = request.headerFields[.contentType]?.split(separator: ";").first
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard type == "application/json" else { return .unsupportedMediaType }
        }
        return nil
    }

    /// `host[:port]` or `[v6][:port]` → the lower-cased host (brackets kept for IPv6).
    static func hostName(_ authority: String) -> String {
        let lower = authority.lowercased()
        if lower.hasPrefix("["), let end = lower.firstIndex(of: "]") { return String(lower[...end]) }
        return String(lower.split(separator: ":", maxSplits: 1).first ?? "")
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        // HMAC both under one random key so lengths and contents are compared in constant time.
        let key = SymmetricKey(size: .bits256)
        let macA = HMAC<SHA256>.authenticationCode(for: a, using: key)
        return HMAC<SHA256>.isValidAuthenticationCode(macA, authenticating: b, using: key)
    }
}
