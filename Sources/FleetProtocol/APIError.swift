import Foundation
public import NIOCore

/// An error answered to an API client in OpenAI's shape, with its HTTP status.
///
/// The `code` strings are bounded and double as metrics labels.
public struct APIError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The HTTP status.
    public var status: Int
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`, `server_error`.
    public var type: String
    /// A stable machine-readable code.
    public var code: String
    /// A human-readable message. Never include prompt text.
    public var message: String
    /// The offending parameter, when one.
    public var param: String?
    /// Seconds for a `Retry-After` header (429 and 503), when one.
    public var retryAfter: Int?

    public init(status: Int, type: String, code: String, message: String, param: String? = nil) {
        self.status = status
        self.type = type
        self.code = code
        self.message = message
        self.param = param
    }

    /// 400: the body is not valid JSON or a field is wrong.
    public static func invalidRequest(_ message: String, param: String? = nil) -> Self {
        Self(status: 400, type: "invalid_request_error", code: "invalid_request", message: message, param: param)
    }
    /// A 400 naming `name` when `value` is outside `low`…`high` (a sampling parameter's range, as
    /// OpenAI's); nothing when it is absent or inside.
    public static func checkRange(_ name: String, _ value: Double?, _ low: Int, _ high: Int) throws(APIError) {
        guard let value, !(Double(low)...Double(high)).contains(value) else { return }
        throw .invalidRequest("'\(name)' must be between \(low) and \(high).", param: name)
    }

    /// 401: no or wrong API key.
    public static let invalidAPIKey = Self(
        status: 401, type: "authentication_error", code: "invalid_api_key",
        message: "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.")
    /// 404: the model is not served.
    public static func modelNotFound(_ model: String) -> Self {
        Self(
            status: 404, type: "invalid_request_error", code: "model_not_found",
            message: "The model '\(model.prefix(128))' does not exist or is not served by any car or central capacity.",
            param: "model")
    }
    /// 404: no such route.
    public static let notFound = Self(
        status: 404, type: "invalid_request_error", code: "not_found", message: "Unknown path.")
    /// 404: a stored response was asked for; the gateway stores none (`store` is refused).
    public static let responseNotStored = Self(
        status: 404, type: "invalid_request_error", code: "not_found",
        message:
            "FleetGate stores no responses, so none can be retrieved, cancelled or deleted: responses are created with 'store: false'."
    )
    /// 405.
    public static let methodNotAllowed = Self(
        status: 405, type: "invalid_request_error", code: "method_not_allowed",
        message: "Method not allowed on this path.")
    /// 413: the body exceeds the limit.
    public static func bodyTooLarge(limit: Int) -> Self {
        Self(
            status: 413, type: "invalid_request_error", code: "request_too_large",
            message: "Request body exceeds the limit of \(limit) bytes.")
    }
    /// 429: over a limit.
    public static func rateLimited(_ message: String) -> Self {
        Self(status: 429, type: "rate_limit_error", code: "rate_limit_exceeded", message: message)
    }
    /// 503: the gateway sheds load (DESIGN.md, Contracts: overload); retry after `retryAfter` seconds.
    public static func overloaded(_ message: String, retryAfter: Int = 1) -> Self {
        var error = Self(status: 503, type: "server_error", code: "server_overloaded", message: message)
        error.retryAfter = retryAfter
        return error
    }
    /// 503: nothing in the zone can serve.
    public static func noCapacity(zone: String) -> Self {
        Self(
            status: 503, type: "server_error", code: "no_capacity_in_zone",
            message: "No car or central capacity in privacy zone '\(zone)' can serve this request now.")
    }
    /// 503 `no_capacity_in_zone` while the zone's central capacity is out of rotation for its failures
    /// and expected back in `retryAfter` seconds (DESIGN.md: retryable when capacity is expected back).
    public static func noCapacity(zone: String, centralBackIn retryAfter: Int) -> Self {
        var error = Self(
            status: 503, type: "server_error", code: "no_capacity_in_zone",
            message:
                "No car in privacy zone '\(zone)' can serve this request, and its central capacity is out of rotation after failing. Retry after \(retryAfter) s."
        )
        error.retryAfter = retryAfter
        return error
    }
    /// 502: the upstream failed.
    public static func upstreamFailed(_ message: String) -> Self {
        Self(status: 502, type: "server_error", code: "upstream_error", message: message)
    }
    /// 408: the client took too long to send the request.
    public static let requestTimeout = Self(
        status: 408, type: "invalid_request_error", code: "request_timeout",
        message: "The request body did not arrive in time.")

    /// The JSON body `{"error":{…}}`.
    public var body: APIErrorBody {
        APIErrorBody(message: self.message, type: self.type, code: self.code, param: self.param)
    }

    public var description: String { "\(self.code): \"\(self.message)\" (status: \(self.status))" }

    /// A car's job failed because its runtime answered with a function call the car path cannot
    /// relay — a legacy `function_call`, pieces of another shape, a finish `tool_calls` with no call
    /// (tool calls themselves are relayed): the gateway serves the request from central capacity.
    public static let runtimeToolCallCode = "runtime_tool_call"
    /// OpenAI's (and runtimes') refusal of a prompt and `max_tokens` over the model's context window.
    public static let contextLengthExceededCode = "context_length_exceeded"

    /// A car's job failed because its runtime answered more than one choice (it honoured `n`), which
    /// the car path does not carry: as ``runtimeToolCallCode``, the request goes to central capacity.
    public static let runtimeMultipleChoicesCode = "runtime_multiple_choices"

    /// An upstream (central, or a car's runtime) answered 429 or 503: tried elsewhere, and when every
    /// upstream tried is busy the app gets 503 `server_overloaded` with `Retry-After`.
    public static let upstreamBusyCode = "upstream_busy"

    /// Whether an upstream's HTTP status says it is busy (429, 503), not broken.
    public static func isBusy(status: Int) -> Bool { status == 429 || status == 503 }

    /// Whether an upstream's 4xx rejects the client's request itself (a prompt over the context, a
    /// parameter refused), so the client gets it: not 408 (a timeout) or 429 (busy), and not 401,
    /// 403, 404 or 407, which say the gateway's or the car's own set-up is wrong (a key, a model
    /// name) — the client's key and model were checked here, and an upstream's "invalid API key"
    /// must not reach an app as its own (helper-60).
    public static func rejectsRequest(status: Int) -> Bool {
        (400..<500).contains(status) && ![401, 403, 404, 407, 408, 429].contains(status)
    }

    /// The codes of a car's failure that no other car would avoid: the request goes to central.
    public static let carPathCannotCarry: Set<String> = [runtimeToolCallCode, runtimeMultipleChoicesCode]

    /// An OpenAI-style error body with `error.param` `from` renamed `to`, and "the `from`" in its message
    /// (a car's refusal names a chat request's `messages`; on `/v1/responses` the field is `input`); any
    /// other body as it came.
    public static func renamingParam(_ from: String, to: String, in body: ByteBuffer) -> ByteBuffer {
        guard case .object(var object)? = try? JSON.decode(JSONValue.self, from: body.readableBytesView),
            case .object(var error)? = object["error"], error["param"] == .string(from)
        else { return body }
        error["param"] = .string(to)
        if case .string(let message)? = error["message"] {
            error["message"] = .string(message.replacingOccurrences(of: "the \(from)", with: "the \(to)"))
        }
        object["error"] = .object(error)
        return JSON.buffer(JSONValue.object(object))
    }

    /// The `error.code` of an error body.
    /// - Parameter body: an upstream's answer, `{"error":{"code":…}}` when it is an OpenAI-style error.
    /// - Returns: the code, or nil when the body is not such an error or its code is not a string.
    public static func code(in body: ByteBuffer) -> String? { Self.detail(in: body)?.code }

    /// `error.code` and `error.message` of an OpenAI-style error body, read once; nil when it is not one.
    /// A member that is not a string is nil.
    public static func detail(in body: ByteBuffer) -> (code: String?, message: String?)? {
        struct Body: Decodable {
            struct Detail: Decodable {
                var code, message: String?
                enum CodingKeys: String, CodingKey { case code, message }
                init(from decoder: any Decoder) throws {
                    let c = try decoder.container(keyedBy: CodingKeys.self)
                    self.code = try? c.decode(String.self, forKey: .code)
                    self.message = try? c.decode(String.self, forKey: .message)
                }
            }
            var error: Detail
        }
        return (try? JSON.decode(Body.self, from: body.readableBytesView)).map { ($0.error.code, $0.error.message) }
    }
}

/// JSON helpers shared by gateway and agent.
public enum JSON {
    /// Encodes to a ByteBuffer (keys sorted, no slash escaping).
    public static func buffer<T: Encodable>(_ value: T, allocator: ByteBufferAllocator = .init()) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return allocator.buffer(bytes: data)
    }

    /// Encodes to a string.
    public static func string<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return String(decoding: (try? encoder.encode(value)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// Decodes, turning decoding errors into a 400 that names the field without echoing values.
    public static func decodeRequest<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws(APIError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
        } catch let DecodingError.keyNotFound(key, context) {
            let path = InvalidRequestField.param(context.codingPath + [key])
            throw .invalidRequest("Missing required parameter: '\(path)'.", param: path)
        } catch let DecodingError.typeMismatch(expected, context) {
            // The body itself is not an object (an array, a string): no parameter to name (helper-127: `""`).
            if context.codingPath.isEmpty { throw .invalidRequest("The request body must be a JSON object.") }
            let path = InvalidRequestField.param(context.codingPath)
            throw .invalidRequest(
                RequestTypeError.message(param: path, expected: expected, description: context.debugDescription),
                param: path)
        } catch let DecodingError.valueNotFound(_, context) {
            let path = InvalidRequestField.param(context.codingPath)
            throw .invalidRequest("Invalid value for '\(path)': null.", param: path)
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let path = InvalidRequestField.param(context.codingPath)
            throw .invalidRequest("Invalid value for '\(path)'.", param: path)
        } catch let field as InvalidRequestField {
            throw .invalidRequest(field.message, param: field.param)
        } catch {
            // Foundation calls a number that is no `Int` invalid JSON, with no path.
            if let type = type as? any IntegerMembers.Type,
                case .object(let object)? = try? JSONDecoder().decode(
                    JSONValue.self, from: Data(buffer.readableBytesView)),
                let found = RequestTypeError.integerMember(in: object, names: type.integerMembers)
            {
                throw .invalidRequest(found.message, param: found.param)
            }
            throw .invalidRequest("We could not parse the JSON body of your request.")
        }
    }

    /// Decodes without mapping errors.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Sequence<UInt8>) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }
}
