import Foundation
public import NIOCore

/// Members of a chat request read apart from ``CompletionRequest``: they are rare, and every member
/// of that type is copied a few times a request (issue #19). The fast reader gives up on a body that
/// asks for audio or a web search (``CompletionRequest/fastDecode(_:)``), so only such bodies are
/// read for them; `metadata` and `logit_bias`, which it skips, are read from the body's own bytes
/// (``passedOn(in:members:)``).
public struct RequestExtras: Decodable, Sendable, Hashable {
    /// `modalities` and `audio`: an answer spoken as well as written (``wantsAudio``).
    public var modalities: JSONValue?
    public var audio: JSONValue?
    /// `web_search_options`: a search run on the platform, outside any privacy zone.
    public var webSearchOptions: JSONValue?
    /// `metadata` and `logit_bias`: passed on as they are, so only their shapes are checked (by the gateway).
    public var metadata: JSONValue?
    public var logitBias: JSONValue?
    /// The first of these members whose value is not JSON this gateway reads (a number past a `Double`,
    /// `1e999`): refused, since an upstream would read it as it liked (helper-128: a bias of `1e999`
    /// reached the car). Not a member of the body.
    public var undecodable: String?

    enum CodingKeys: String, CodingKey {
        case modalities, audio, metadata
        case webSearchOptions = "web_search_options"
        case logitBias = "logit_bias"
    }

    /// Whether the answer is to be spoken too (`modalities` with `"audio"`, or `audio` set): a car's
    /// runtime writes text, so only central capacity can serve it (helper-64: a car answered it in
    /// text, with no sign why).
    public var wantsAudio: Bool {
        if let audio = self.audio, !audio.isEmptyOrNull { return true }
        if case .array(let values)? = self.modalities { return values.contains(.string("audio")) }
        return false
    }

    /// The parameter that asked for audio, for an error naming it.
    public var audioParam: String { self.audio.map { $0.isEmptyOrNull } == false ? "audio" : "modalities" }

    /// Whether a web search was asked for (`{}` asks for one with the defaults).
    public var wantsWebSearch: Bool { self.webSearchOptions.map { $0 != .null } ?? false }

    /// The extras of `body`, when it may have any: nil without `"audio"` (a member, or a modality),
    /// `"web_search_options"`, `"metadata"`, `"logit_bias"` or an escape (`\u`: a name may be written `"\u0061udio"`, which an
    /// upstream reads as `audio`; helper-66) in its bytes (most bodies: a byte search, no decode), or
    /// when it is not a JSON object.
    public static func of(_ body: ByteBuffer) -> RequestExtras? {
        guard
            JSONBody.contains(body, #""audio""#) || JSONBody.contains(body, #""web_search_options""#)
                || JSONBody.contains(body, #""metadata""#) || JSONBody.contains(body, #""logit_bias""#)
                || JSONBody.contains(body, #"\u"#)
        else { return nil }
        if let extras = try? JSONDecoder().decode(Self.self, from: Data(body.readableBytesView)) { return extras }
        // One of them does not decode: each on its own, so the others are still read and that one is named.
        guard let members = JSONBody.members(of: body) else { return nil }
        return Self.individually(in: body, members: members, names: Self.names)
    }

    /// The members read here, as the body names them.
    static let names = ["modalities", "audio", "web_search_options", "metadata", "logit_bias"]

    /// `metadata` and `logit_bias` of a body the fast reader took, from its top-level `members`
    /// (``JSONBody/members(of:)``; no escapes in the names, the fast reader refuses them): nil when
    /// the body has neither (its few names compared; a byte search cost more, as `"` is everywhere in
    /// JSON), else only those two values, each decoded on its own.
    public static func passedOn(in body: ByteBuffer, members: [JSONBody.Member]) -> RequestExtras? {
        guard members.contains(where: { $0.name == "metadata" || $0.name == "logit_bias" }) else { return nil }
        return Self.individually(in: body, members: members, names: ["metadata", "logit_bias"])
    }

    /// `names` of `body`'s top-level `members`, each decoded on its own; the first present that does not
    /// decode is ``undecodable``.
    private static func individually(in body: ByteBuffer, members: [JSONBody.Member], names: [String]) -> Self {
        var extras = RequestExtras()
        for name in names where members.contains(where: { $0.name == name }) {
            let value = JSONBody.value(of: name, in: body, members: members)
            if value == nil, extras.undecodable == nil { extras.undecodable = name }
            switch name {
            case "modalities": extras.modalities = value
            case "audio": extras.audio = value
            case "web_search_options": extras.webSearchOptions = value
            case "metadata": extras.metadata = value
            default: extras.logitBias = value
            }
        }
        return extras
    }
}
