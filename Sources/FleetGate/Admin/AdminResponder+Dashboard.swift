import FleetHTTP2
import FleetProtocol
import Foundation
import HTTPTypes
import NIOCore

/// The live fleet dashboard on the admin listener (DESIGN.md, Admin and probes: loopback, the admin
/// token, a SameSite cookie after a one-time login).
///
/// - `GET /dashboard/login?token=T`: with the admin token, sets the session cookie and redirects to
///   `/dashboard` (303); otherwise 401.
/// - `GET /dashboard`: the page (``DashboardPage``), with a session; otherwise 401 saying how to log in.
/// - `GET /dashboard/api/decisions`: the last routing decisions (``RecentDecisions``), with a session.
extension AdminResponder {
    func dashboard(_ stream: any HTTPStream, request: HTTPRequest, path fullPath: String) -> any HTTPStreamDelegate {
        let sessions = self.dashboard
        let parts = fullPath.split(separator: "?", maxSplits: 1)
        let path = String(parts[0])
        let query = parts.count > 1 ? String(parts[1]) : ""
        guard request.method == .get else {
            return DashboardResponse(stream: stream, status: .methodNotAllowed, body: "GET only\n")
        }
        if path == "/dashboard/login" {
            let token = query.split(separator: "&").compactMap { item -> String? in
                let pair = item.split(separator: "=", maxSplits: 1)
                return pair.count == 2 && pair[0] == "token" ? String(pair[1]).removingPercentEncoding : nil
            }.first
            guard let token, let session = sessions.login(token: token) else {
                return DashboardResponse(stream: stream, status: .unauthorized, body: "Wrong or missing admin token.\n")
            }
            var headers = HTTPFields()
            headers[.setCookie] =
                "\(DashboardSessions.cookie)=\(session); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(Int(DashboardSessions.sessionLifetime))"
            headers[.location] = "/dashboard"
            headers[.cacheControl] = "no-store"
            return DashboardResponse(stream: stream, status: .seeOther, body: "", headers: headers)
        }
        guard sessions.isValid(cookieHeader: request.headerFields[.cookie]) else {
            return DashboardResponse(
                stream: stream, status: .unauthorized,
                body:
                    "Log in once at /dashboard/login?token=ADMIN_TOKEN (admin.tokenFile's token, or the one in the file the gateway named in its log at start).\n"
            )
        }
        switch path {
        case "/dashboard":
            var headers = HTTPFields()
            // Self-contained: scripts and styles inline only, data from this origin only, no framing.
            headers[HTTPField.Name("content-security-policy")!] =
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'"
            headers[.cacheControl] = "no-store"
            return DashboardResponse(
                stream: stream, status: .ok, body: DashboardPage.html, contentType: "text/html; charset=utf-8",
                headers: headers)
        case "/dashboard/api/decisions":
            return DashboardResponse(
                stream: stream, status: .ok, body: JSON.buffer(self.core.decisions.latest),
                contentType: "application/json")
        default:
            return DashboardResponse(stream: stream, status: .notFound, body: "Not found\n")
        }
    }
}
