import FleetGeo
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import Foundation
import HTTPTypes
import NIOCore

/// A completion request that passed validation: what dispatch needs, and nothing of the text.
struct ValidatedRequest: Sendable {
    var chat: Bool
    var model: String
    var streaming: Bool
    var includeUsage: Bool
    var outputLimit: Int?
    /// Whether the request's state can be carried to another upstream mid-stream.
    var continuable: Bool
    var origin: Origin
    /// The enforced privacy zone.
    var zone: String
    /// What the scheduler may know.
    var profile: RequestProfile
    /// The body for the upstream: the client's, byte for byte — or, for `/v1/responses`, the chat
    /// request it maps onto.
    var body: ByteBuffer
    /// The top-level members of ``body`` (``JSONBody/members(of:)``), read once by the validator
    /// for central's edit of it; nil for `/v1/responses`, whose body the gateway encoded itself.
    var members: [JSONBody.Member]? = nil
    /// The synthetic-text seed, computed once from the body so every attempt of a continuation
    /// generates the same text (DESIGN.md, Contracts: continuation).
    var seed: UInt64
    /// The choices asked for (`n`, 1 when absent).
    var choices = 1
    /// Central capacity only (never a car): the application key allows no car, or the request asks for
    /// what cars do not serve (`n` > 1: a car's job is one choice).
    var centralOnly = false
    /// W3C Trace Context sent to every attempt: the gateway's span as the parent (#17), and the
    /// app's `tracestate`, passed through.
    var traceParent = ""
    var traceState: String? = nil
    /// cluster (#21): 1 when another replica forwarded the request (it is then never forwarded again).
    var hop = 0
    /// cluster (#21): the client's `Authorization`, sent along when the request is forwarded (the
    /// other replica checks the key again). Kept only while clustering is on.
    var authorization: String? = nil
    /// For `/v1/responses`: the `response` in progress, which the client sees instead of chat chunks.
    var responses: ResponseObject? = nil
}

/// Turns a request head and body into a ``ValidatedRequest`` or the `APIError` to answer.
///
/// Responsibilities, in order: the JSON body and its fields (400) — for `/v1/responses`, the
/// refusals and the mapping onto a chat request (``ResponsesRequest/chatRequest()``) —, the model (404), the TTFT
/// objective header (400), the origin — socket peer, or the trusted proxy's `X-Forwarded-For` —
/// to region and privacy zone, tightened but never loosened by `x-fleet-residency` (400).
/// The API key is checked earlier, on the head, before any body byte is buffered.
struct RequestValidator {
    let core: GatewayCore

    func validate(
        head: HTTPRequest, connection: HTTPConnectionInfo, body: ByteBuffer, api: ClientAPI
    ) throws(APIError) -> ValidatedRequest {
        var body = body
        var responses: ResponseObject?
        var members: [JSONBody.Member]?
        /// Audio, a web search: only a body the fast reader gave up on can ask for them.
        var extras: RequestExtras?
        let parsed: CompletionRequest
        if api == .responses {
            let request = try JSON.decodeRequest(ResponsesRequest.self, from: body)
            parsed = try request.chatRequest()
            body = JSON.buffer(parsed)
            if let parallel = request.parallelToolCalls, parsed.tools != nil {
                // Not a member of the chat request type (every request would copy it): added to its bytes.
                body = JSONBody.editing(body, removing: [], appending: [("parallel_tool_calls", "\(parallel)")]) ?? body
            }
            let id = IdentifierRandom.uuidString().replacingOccurrences(of: "-", with: "")
            responses = request.responseTemplate(id: "resp_" + id, createdAt: Int(Date().timeIntervalSince1970))
        } else {
            var fast = CompletionRequest.fastDecode(body)
            if fast == nil && !api.chat {
                body = try Self.singlePrompt(body)  // `prompt: ["…"]`: the fast reader takes a string only
                fast = CompletionRequest.fastDecode(body)
            }
            if let fast {
                parsed = fast  // JSONDecoder's result, without its cost (see fastDecode)
            } else {
                parsed = try JSON.decodeRequest(CompletionRequest.self, from: body)
                extras = RequestExtras.of(body)
                if let extras { try Self.checkExtras(extras) }
                // The fast reader refuses a name written twice at any depth; the decoder keeps the
                // first, an upstream may read the last (helper-58: a message's second `role`).
                if let name = JSONBody.firstNestedDuplicate(in: body) {
                    throw .invalidRequest(
                        "The JSON body has the member '\(name.prefix(64))' more than once in one object.",
                        param: String(name.prefix(64)))
                }
            }
            // The gateway edits the client's own bytes (central's `stream`, a continuation's text):
            // a body Foundation accepts but the strict reader cannot walk (nesting past 32, a raw
            // control character in a string, a stray UTF-8 continuation byte — found by the request
            // fuzzer, issue #20) would go out unedited, so it is refused here.
            members = JSONBody.members(of: body)
            guard let members else {
                throw .invalidRequest(
                    "The JSON body is nested too deeply or contains characters JSON does not allow in strings.")
            }
            // The gateway checks the first of two `model`s (an app key's models, the zone's capacity)
            // and forwards the bytes; a Python runtime would serve the last (helper-56). A body the
            // decoder read was checked at every depth above.
            // One test of `fast` (each copies the request: callgrind, +540 instructions a request for two).
            if fast != nil {
                if let name = JSONBody.firstDuplicate(in: members) {
                    throw .invalidRequest(
                        "The JSON body has the member '\(name.prefix(64))' more than once.",
                        param: String(name.prefix(64)))
                }
                if let passedOn = RequestExtras.passedOn(in: body, members: members) { try Self.checkExtras(passedOn) }
            }
        }
        if api.chat && (parsed.messages ?? []).isEmpty {
            throw .invalidRequest("'messages' must be a non-empty array.", param: "messages")
        }
        if !api.chat && parsed.prompt == nil {
            throw .invalidRequest("Missing required parameter: 'prompt'.", param: "prompt")
        }
        if parsed.maxTokens != nil && parsed.maxCompletionTokens != nil {
            // OpenAI's answer (one silently won before: note 44).
            throw APIError(
                status: 400, type: "invalid_request_error", code: "invalid_parameter_combination",
                message: "Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
                param: "max_tokens")
        }
        if let limit = parsed.outputLimit, limit < 1 || limit > 1 << 16 {
            let name = parsed.maxCompletionTokens != nil ? "max_completion_tokens" : "max_tokens"
            throw .invalidRequest("'\(name)' must be between 1 and 65536.", param: name)
        }
        if let n = parsed.n, n < 1 || n > 8 {
            throw .invalidRequest("'n' must be between 1 and 8.", param: "n")
        }
        try Self.checkSampling(parsed)
        if let members {
            try Self.checkLegacyToolMembers(members, in: body, hasTools: !(parsed.tools?.isEmptyOrNull ?? true))
        }
        // OpenAI's 400 for an empty model, not a 404 for a model named "" (helper-127).
        if parsed.model.isEmpty { throw .invalidRequest("You must provide a model parameter.", param: "model") }
        guard self.core.serves(model: parsed.model) else {
            throw .modelNotFound(parsed.model)
        }
        var objective = self.core.configuration.defaultTTFTObjectiveMilliseconds
        if let slo = head.headerFields[.fleetSLOTTFT] {
            guard let value = Double(slo), value >= 1, value <= 600_000 else {
                throw .invalidRequest(
                    "x-slo-ttft-ms '\(slo.prefix(32))' must be a number of milliseconds between 1 and 600000.",
                    param: FleetHeader.sloTTFT)
            }
            objective = value
        }
        // cluster (#21): a replica's signed origin, believed only on the internal listener.
        let forwarded = try self.core.cluster?.forwardedOrigin(
            head, connection: connection, map: self.core.geo.current.map)
        let origin = forwarded ?? self.core.origin(of: head, connection: connection)
        let residency = head.headerFields[.fleetResidency]
        if let residency {
            // Zones are disjoint, so tightening can only restate the origin's own zone.
            guard residency == origin.zone else {
                throw .invalidRequest(
                    "x-fleet-residency '\(residency.prefix(32))' does not overlap the origin's zone '\(origin.zone)'.",
                    param: FleetHeader.residency)
            }
        }
        // A `preferred` zone with nothing serving the model spills to the nearest that has (helper-64:
        // the map's `residency: preferred` was read and never applied).
        // A request another replica forwarded is served in its origin's zone: that replica decided
        // whether to spill, and keeps a spilled request (a pinned one is not marked as such here).
        let zone = self.core.servingZone(of: origin, model: parsed.model, pinned: residency != nil || forwarded != nil)
        // A prompt token is taken as ~4 bytes of the body (which also holds JSON punctuation).
        var profile = RequestProfile(
            model: parsed.model, zone: zone, promptTokens: max(1, body.readableBytes / 4),
            expectedOutputTokens: min(parsed.plannedOutputLimit, 1_024),
            ttftObjectiveMilliseconds: objective,
            tpotObjectiveMilliseconds: self.core.configuration.tpotObjectiveMilliseconds)
        // #14 prefix-cache affinity: keyed hashes of the cumulative message prefixes (no text kept);
        // nothing at all when affinity is off.
        if let hasher = self.core.prefixHasher, let messages = parsed.messages {
            profile.prefixes = hasher.chunks(messages)
        }
        let prompt = parsed.promptText
        profile.neededContextTokens = prompt.estimatedTokens + parsed.windowOutputTokens
        var request = ValidatedRequest(
            chat: api.chat, model: parsed.model, streaming: parsed.stream ?? false,
            includeUsage: parsed.streamOptions?.includeUsage ?? false, outputLimit: parsed.outputLimit,
            continuable: parsed.isContinuable, origin: origin, zone: zone, profile: profile, body: body,
            members: members, seed: SyntheticText.seed(for: prompt, requested: parsed.seed),
            hop: forwarded == nil ? 0 : 1,
            authorization: self.core.cluster == nil ? nil : head.headerFields[.authorization], responses: responses)
        // A car's job is one choice of text: `n` > 1 answered by a car came back as one (an attack,
        // session 19), and log probabilities were dropped without a word.
        request.choices = parsed.n ?? 1
        // A web search runs on the platform, outside the car and the request's privacy zone (as the
        // Responses API's `web_search` tool, docs/responses.md); served anyway, a car ignored it.
        if extras?.wantsWebSearch == true {
            throw .invalidRequest(
                "'web_search_options' is not served: a web search runs outside the fleet and the request's privacy zone.",
                param: "web_search_options")
        }
        let wantsAudio = extras?.wantsAudio ?? false
        if wantsAudio { request.continuable = false }
        var legacyParam: String?
        if !api.chat, let members { legacyParam = try Self.legacyCentralParam(in: body, members: members) }
        request.centralOnly = request.choices > 1 || parsed.wantsLogprobs || wantsAudio || legacyParam != nil
        // Without central capacity for the zone at all (not merely down), such a request can never be
        // served: a 400 naming the parameter, not a 503 that tells the client to retry (helper-56).
        // A cluster's other replicas may have some, so there the dispatcher decides.
        if request.centralOnly, self.core.cluster == nil,
            !self.core.central.all.contains(where: { $0.zone == request.zone })
        {
            let param =
                request.choices > 1
                ? "n"
                : parsed.wantsLogprobs ? "logprobs" : legacyParam ?? extras?.audioParam ?? "modalities"
            throw .invalidRequest(
                "'\(param)' is served only by central capacity, and zone '\(request.zone)' has none configured.",
                param: param)
        }
        return request
    }

    /// OpenAI's ranges for the sampling parameters and its message roles: a value OpenAI refuses is
    /// refused here too, so an app behaves the same against either (helper-56: `temperature: 5` and
    /// role `wizard` were served).
    static func checkSampling(_ request: CompletionRequest) throws(APIError) {
        // One check at a time, not a table of them: an array built a request is a heap allocation.
        try APIError.checkRange("temperature", request.temperature, 0, 2)
        try APIError.checkRange("top_p", request.topP, 0, 1)
        try APIError.checkRange("presence_penalty", request.presencePenalty, -2, 2)
        try APIError.checkRange("frequency_penalty", request.frequencyPenalty, -2, 2)
        try Self.checkLogprobs(request)
        if let top = request.topLogprobs, top < 0 || top > 20 {
            throw .invalidRequest("'top_logprobs' must be between 0 and 20.", param: "top_logprobs")
        }
        // OpenAI's and vLLM's rule: alternatives only with the log probabilities themselves; passed on
        // alone, a car's runtime answered without either (helper-127).
        if let top = request.topLogprobs, top > 0, request.messages != nil, request.logprobs != .bool(true) {
            throw .invalidRequest("'top_logprobs' needs 'logprobs' set to true.", param: "top_logprobs")
        }
        // OpenAI takes at most 4 stop sequences (helper-63).
        if let stop = request.stop, stop.values.count > 4 {
            throw .invalidRequest("'stop' takes at most 4 sequences.", param: "stop")
        }
        // OpenAI refuses a tool choice without tools; served anyway, a car answered in prose (helper-60).
        if let choice = request.toolChoice, !choice.isEmptyOrNull, request.tools?.isEmptyOrNull ?? true {
            throw .invalidRequest(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
                param: "tool_choice")
        }
        guard let messages = request.messages else { return }
        for index in messages.indices where !Self.isRole(messages[index].role) {
            throw .invalidRequest(
                "'messages[\(index)].role' must be one of 'system', 'developer', 'user', 'assistant', 'tool' or 'function'.",
                param: "messages[\(index)].role")
        }
        try Self.checkShapes(request)
        try Self.checkToolUse(request)
    }

    /// The message roles OpenAI's chat completions take (a switch: no hashing a message).
    static func isRole(_ role: String) -> Bool {
        switch role {
        case "user", "assistant", "system", "developer", "tool", "function": true
        default: false
        }
    }

}

extension RequestValidator {
    /// A legacy completion whose `prompt` is a list of one string (LangChain's OpenAI LLM and other
    /// batching clients send it so): the body with that string as its `prompt`, as every upstream reads
    /// it (a car's engine, a continuation). A list of more is refused — one request is one prompt here —
    /// and any other body is returned as it is (the decoder judges it).
    static func singlePrompt(_ body: ByteBuffer) throws(APIError) -> ByteBuffer {
        guard let members = JSONBody.members(of: body),
            let value = JSONBody.rawValue(of: "prompt", in: body, members: members),
            let (count, first) = JSONBody.stringArray(value)
        else { return body }
        guard count == 1, let first else {
            throw .invalidRequest(
                "'prompt' holds \(count) prompts; this gateway takes one prompt per request: send them as separate requests.",
                param: "prompt")
        }
        return JSONBody.editing(
            body, members: members, removing: ["prompt"], appending: [("prompt", String(buffer: first))])
    }
}
