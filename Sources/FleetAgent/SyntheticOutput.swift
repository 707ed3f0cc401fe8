import FleetProtocol

/// What a synthetic car writes for a chat request besides prose: a function call when the request's
/// `tools` and `tool_choice` call for one, JSON when its `response_format` asks for it — so an app's
/// tool-calling and structured-output code runs against the demo (helper-127: the demo's cars answered
/// every request in prose, and `responses.parse` failed).
///
/// Like the prose, a pure function of the request and the seed. The choice follows what a model does
/// in an agent's loop: `required` or a named function calls; `auto` (or no choice) calls while the
/// conversation's last message is not a tool's result, and answers once it is; `none` never calls.
/// Arguments and JSON are an instance of the schema given (``SyntheticJSON``).
enum SyntheticOutput: Equatable {
    case text
    case toolCall(name: String, arguments: String)
    case json(String)

    static func of(_ request: CompletionRequest, seed: UInt64) -> Self {
        guard let messages = request.messages else { return .text }  // a legacy completion: prose
        let functions = Self.functions(request.tools)
        if !functions.isEmpty {
            let pick = functions[Int(seed % UInt64(functions.count))]
            switch request.toolChoice {
            case .string("required")?:
                return Self.call(pick, seed: seed)
            case .object(let choice)?:
                if case .object(let function)? = choice["function"], case .string(let name)? = function["name"],
                    let named = functions.first(where: { $0.name == name })
                {
                    return Self.call(named, seed: seed)
                }
            case .string("none")?:
                break
            default:  // `auto`, or no choice
                if messages.last?.role != "tool" { return Self.call(pick, seed: seed) }
            }
        }
        guard case .object(let format)? = request.responseFormat, case .string(let type)? = format["type"] else {
            return .text
        }
        switch type {
        case "json_object":
            return .json(JSON.string(JSONValue.object(["answer": .string(SyntheticJSON.words(seed: seed, count: 6))])))
        case "json_schema":
            guard case .object(let wrapper)? = format["json_schema"] else { return .text }
            let schema = wrapper["schema"] ?? .object([:])
            var maker = SyntheticJSON(root: schema, seed: seed)
            return .json(JSON.string(maker.instance(of: schema)))
        default:
            return .text
        }
    }

    /// The pieces the output is written in, a token each (about four bytes, whole characters).
    var pieces: [String] {
        let text: String
        switch self {
        case .text: return []
        case .toolCall(_, let arguments): text = arguments
        case .json(let json): text = json
        }
        var pieces: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.utf8.count >= 4 {
                pieces.append(current)
                current = ""
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }

    private static func call(_ function: (name: String, parameters: JSONValue), seed: UInt64) -> Self {
        // No parameters (or `{}`): the call's arguments are an empty object, not any value.
        let parameters =
            function.parameters == .object([:]) ? .object(["type": .string("object")]) : function.parameters
        var maker = SyntheticJSON(root: parameters, seed: seed)
        let arguments = maker.instance(of: parameters)
        return .toolCall(name: function.name, arguments: JSON.string(arguments))
    }

    /// The request's function tools, in order: name and parameter schema (`{}` when it has none).
    private static func functions(_ tools: JSONValue?) -> [(name: String, parameters: JSONValue)] {
        guard case .array(let list)? = tools else { return [] }
        return list.compactMap { tool in
            guard case .object(let fields) = tool, fields["type"] == .string("function"),
                case .object(let function)? = fields["function"], case .string(let name)? = function["name"],
                !name.isEmpty
            else { return nil }
            return (name, function["parameters"] ?? .object([:]))
        }
    }
}
