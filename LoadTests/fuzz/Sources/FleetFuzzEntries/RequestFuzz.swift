import FleetGate
import FleetProtocol
import HTTPTypes
import NIOCore

/// Target `request`: the input is a request body, validated for each completion API as the client
/// handler validates it.
///
/// Invariants beyond "no crash":
/// - a chat or legacy completion is sent upstream byte for byte;
/// - a Responses request maps onto a chat request that itself validates, for the same model;
/// - every accepted body can be rewritten the way dispatch rewrites it — for central capacity
///   (`stream: true` forced) and, when continuable, for a continuation from delivered text — and
///   the rewritten body validates again for the same model (a rewrite that fails falls back to
///   the original body, which would repeat tokens or lose the stream).
enum RequestFuzz {
    static let models = ["fleet-8b", "smollm2-135m"]
    static let core: GatewayCore = {
        do {
            return try GatewayCore.detached(models: Self.models, fleetSecret: "fuzz-fleet-secret-0123456789")
        } catch {
            fatalError("Internal inconsistency: the detached core failed: \(error)")
        }
    }()
    static let peer = try? SocketAddress(ipAddress: "81.2.69.142", port: 40_000)

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        let body = ByteBuffer(bytes: bytes)
        for path in ["/v1/chat/completions", "/v1/completions", "/v1/responses"] {
            guard case .success(let accepted) = Self.validate(path: path, body: body) else { continue }
            try check(Self.models.contains(accepted.model), "\(path): accepted an unserved model")
            let upstreamPath = path == "/v1/completions" ? path : "/v1/chat/completions"
            if path == "/v1/responses" {
                try Self.revalidate(accepted.body, path: upstreamPath, model: accepted.model, what: "the mapped chat request")
            } else {
                try check(accepted.body == body, "\(path): the upstream body differs from the client's")
            }
            let central = JSONBody.editing(
                accepted.body, removing: ["stream", "stream_options"],
                appending: [("stream", "true"), ("stream_options", "{\"include_usage\":true}")])
            guard let central else { throw FuzzFinding("\(path): the central body rewrite failed") }
            try Self.revalidate(central, path: upstreamPath, model: accepted.model, what: "the central body")
            if accepted.continuable {
                let text = "Fuzzed \"text\" \\ with\nescapes\u{1} and é 🚗"
                guard let continued = JSONBody.continuation(of: accepted.body, text: text, delivered: 3) else {
                    throw FuzzFinding("\(path): the continuation rewrite failed on a continuable request")
                }
                try Self.revalidate(continued, path: upstreamPath, model: accepted.model, what: "the continuation")
            }
        }
    }

    static func validate(path: String, body: ByteBuffer) -> Result<GatewayCore.AcceptedRequest, APIError>? {
        var head = HTTPRequest(method: .post, scheme: "http", authority: "gateway", path: path)
        head.headerFields[.contentType] = "application/json"
        return Self.core.validateRequest(path: path, head: head, peer: Self.peer, body: body)
    }

    static func revalidate(_ body: ByteBuffer, path: String, model: String, what: String) throws(FuzzFinding) {
        switch Self.validate(path: path, body: body) {
        case .success(let again):
            try check(again.model == model, "\(path): \(what) changed the model")
        case .failure(let error):
            throw FuzzFinding("\(path): \(what) no longer validates: \(error)")
        case nil:
            throw FuzzFinding("Internal inconsistency: \(path) is not an API")
        }
    }
}
