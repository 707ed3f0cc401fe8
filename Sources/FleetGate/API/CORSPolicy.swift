import FleetProtocol
import Foundation
import HTTPTypes

/// Which web pages may call the client API from a browser, and the CORS headers that say so
/// (the Fetch standard's CORS protocol), from `auth.corsOrigins`.
///
/// A browser page on another origin sends `Origin` with its request, and first an `OPTIONS`
/// preflight for a `POST` with JSON and an `Authorization` header — every completion request. For
/// an allowed origin the preflight is answered 200 (Envoy's choice; any 2xx passes) with the methods and the headers it asked for,
/// and every answer carries `Access-Control-Allow-Origin`, `Vary: Origin` and the gateway's own
/// headers exposed (`x-request-id`, `retry-after`, `x-fleet-*`), so an app reads them as the SDKs
/// do. An origin not allowed gets no CORS header: its browser refuses to hand the answer to the page.
/// No credentials mode: the key travels in `Authorization`, never in a cookie.
struct CORSPolicy: Sendable, Hashable {
    /// The allowed origins, lower-cased.
    private let origins: Set<String>
    /// `*`: any origin.
    private let anyOrigin: Bool

    init(allowedOrigins: [String]) {
        self.anyOrigin = allowedOrigins.contains("*")
        self.origins = Set(allowedOrigins.filter { $0 != "*" }.map { $0.lowercased() })
    }

    /// Whether any origin is allowed at all (otherwise `Origin` is not even read).
    var isEnabled: Bool { self.anyOrigin || !self.origins.isEmpty }

    /// Whether a page of `origin` may call the API.
    func allows(_ origin: String) -> Bool {
        self.anyOrigin || self.origins.contains(origin.lowercased())
    }

    /// The fields of the answer to an allowed origin's preflight; `requestedHeaders` is its
    /// `Access-Control-Request-Headers`, echoed when it is a list of field names (Authorization
    /// is never covered by a wildcard, so the list is named back).
    func preflightFields(origin: String, requestedHeaders: String?) -> HTTPFields {
        var fields = self.originFields(origin)
        fields.append(HTTPField(name: .accessControlAllowMethods, value: "GET, POST, OPTIONS"))
        if let requested = requestedHeaders, Self.isFieldNameList(requested) {
            fields.append(HTTPField(name: .accessControlAllowHeaders, value: requested))
        }
        fields.append(HTTPField(name: .accessControlMaxAge, value: "600"))
        return fields
    }

    /// The fields every answer to an allowed origin carries.
    func responseFields(origin: String) -> HTTPFields {
        var fields = self.originFields(origin)
        fields.append(HTTPField(name: .accessControlExposeHeaders, value: Self.exposed))
        return fields
    }

    private func originFields(_ origin: String) -> HTTPFields {
        var fields = HTTPFields()
        // The origin itself, not `*`, even when any is allowed: one rule, and caches keyed by Vary.
        fields.append(HTTPField(name: .accessControlAllowOrigin, value: origin))
        fields.append(HTTPField(name: .vary, value: "Origin"))
        return fields
    }

    /// The gateway's response headers a page may read (CORS exposes only a few by default).
    static let exposed =
        ([FleetHeader.requestID, "retry-after", "x-should-retry"]
        + [
            FleetHeader.route, FleetHeader.region, FleetHeader.originRegion, FleetHeader.zone, FleetHeader.vehicle,
            FleetHeader.attempts, FleetHeader.migrations, FleetHeader.predictedTTFT,
        ]).joined(separator: ", ")

    /// `scheme://host[:port]` as a browser serializes an origin (no path, no trailing slash), or `*`.
    static func isValidOrigin(_ text: String) -> Bool {
        if text == "*" { return true }
        guard let separator = text.range(of: "://") else { return false }
        let scheme = text[..<separator.lowerBound]
        let authority = text[separator.upperBound...]
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
            !authority.isEmpty,
            authority.allSatisfy({ $0.isLetter || $0.isNumber || "-.:[]_".contains($0) })
        else { return false }
        return true
    }

    /// A comma-separated list of field names (tokens), at most 2 KB.
    static func isFieldNameList(_ text: String) -> Bool {
        text.utf8.count <= 2048
            && text.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: ","),
                    UInt8(ascii: " "), UInt8(ascii: "."):
                    true
                default: false
                }
            }
    }
}
