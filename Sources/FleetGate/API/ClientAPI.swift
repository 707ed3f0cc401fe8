/// The OpenAI APIs the gateway serves. Each is a route and a view of the same dispatch: the cars
/// speak chat (and legacy) completions only, so every API is served on one of those two paths.
enum ClientAPI: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    /// The Responses API, mapped onto chat completions (``ResponsesRequest/chatRequest()``).
    case responses = "/v1/responses"

    /// The API a request path (with or without a query) is for, without copying it.
    init?(path: String) {
        // The bytes scanned in place (a native string's are contiguous): `utf8.firstIndex(of:)`
        // stepped through String's generic index, ~600 instructions a request (issue #19).
        var path = path
        guard let query = path.withUTF8({ $0.firstIndex(of: UInt8(ascii: "?")) }) else {
            self.init(rawValue: path)
            return
        }
        // No `String` for the path without its query: the raw values compared with the substring.
        let route = path[..<path.utf8.index(path.utf8.startIndex, offsetBy: query)]
        guard let api = Self.allCases.first(where: { route == $0.rawValue }) else { return nil }
        self = api
    }

    /// The route: the path, and the `http_route` label of the request metrics.
    var route: String { self.rawValue }

    /// The path a car or a central endpoint is asked on.
    var upstreamRoute: String {
        self == .completions ? ClientAPI.completions.rawValue : ClientAPI.chatCompletions.rawValue
    }

    /// Whether the upstream speaks chat (rather than legacy completions).
    var chat: Bool { self != .completions }
}
