/// The OpenAI APIs the gateway serves. Each is a route and a view of the same dispatch: the cars
/// speak chat (and legacy) completions only, so every API is served on one of those two paths.
enum ClientAPI: String, Sendable, CaseIterable {
    case chatCompletions = "/v1/chat/completions"
    case completions = "/v1/completions"
    /// The Responses API, mapped onto chat completions (``ResponsesRequest/chatRequest()``).
    case responses = "/v1/responses"

    /// The route: the path, and the `http_route` label of the request metrics.
    var route: String { self.rawValue }

    /// The path a car or a central endpoint is asked on.
    var upstreamRoute: String { self == .completions ? ClientAPI.completions.rawValue : ClientAPI.chatCompletions.rawValue }

    /// Whether the upstream speaks chat (rather than legacy completions).
    var chat: Bool { self != .completions }
}
