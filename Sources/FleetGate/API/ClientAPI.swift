/// The OpenAI APIs the gateway serves. Each is a route and a view of the same dispatch: the cars
/// speak chat (and legacy) completions only, so every API is served on one of those two paths.
enum ClientAPI: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    /// The Responses API, mapped onto chat completions (``ResponsesRequest/chatRequest()``).
    case responses = "/v1/responses"

    /// The API a request path (with or without a query) is for, without copying it: its bytes are
    /// compared in place (a native string's are contiguous). `utf8.firstIndex(of:)`, `init(rawValue:)`
    /// and a `Substring` comparison cost ~600 instructions a request (issue #19).
    init?(path: String) {
        var path = path
        guard let api = path.withUTF8(Self.init(bytes:)) else { return nil }
        self = api
    }

    private init?(bytes: UnsafeBufferPointer<UInt8>) {
        let route = UnsafeBufferPointer(rebasing: bytes[..<(bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count)])
        for api in Self.allCases {
            var raw = api.rawValue
            if raw.withUTF8({ $0.count == route.count && $0.elementsEqual(route) }) {
                self = api
                return
            }
        }
        return nil
    }

    /// The API's place in `allCases`, for arrays indexed by API.
    var ordinal: Int {
        switch self {
        case .chatCompletions: 0
        case .completions: 1
        case .responses: 2
        }
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
