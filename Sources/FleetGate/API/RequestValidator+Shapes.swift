import FleetProtocol
import NIOCore

extension RequestValidator {
    /// The shapes OpenAI checks in `response_format` and `tools`, so that a malformed one is the app's
    /// 400 naming it, not a car runtime's failure after two attempts (helper-72: `"response_format":
    /// "json"`, a `json_schema` without its schema and a function's `parameters` as a string were 200s
    /// passed on to the upstream).
    static func checkShapes(_ request: CompletionRequest) throws(APIError) {
        if let format = request.responseFormat, format != .null { try Self.checkResponseFormat(format) }
        if case .array(let tools)? = request.tools {
            for (index, tool) in tools.enumerated() { try Self.checkTool(tool, at: index) }
        } else if let tools = request.tools, tools != .null {
            throw .invalidRequest(
                "Invalid type for 'tools': expected an array of tools, but got \(Self.kind(tools)) instead.",
                param: "tools")
        }
    }

    /// `logprobs`: a boolean for chat, a count of 0–5 for a legacy completion (OpenAI's types); any
    /// other value was passed on to the upstream, which read it as it liked (helper-96: `"x"`).
    static func checkLogprobs(_ request: CompletionRequest) throws(APIError) {
        guard let logprobs = request.logprobs, logprobs != .null else { return }
        if request.messages != nil {
            guard case .bool = logprobs else {
                throw .invalidRequest(
                    "Invalid type for 'logprobs': expected a boolean, but got \(Self.kind(logprobs)) instead.",
                    param: "logprobs")
            }
        } else if case .number(let count) = logprobs {
            guard count == count.rounded(), (0...5).contains(count) else {
                throw .invalidRequest("'logprobs' must be an integer between 0 and 5.", param: "logprobs")
            }
        } else if case .bool = logprobs {
            return  // some OpenAI-compatible servers take `true` for a legacy completion; so does the gateway
        } else {
            throw .invalidRequest(
                "Invalid type for 'logprobs': expected an integer, but got \(Self.kind(logprobs)) instead.",
                param: "logprobs")
        }
    }

    /// `metadata` (at most 16 string values, keys of at most 64 characters, values of at most 512) and
    /// `logit_bias` (token ids to a bias between -100 and 100), as OpenAI checks them: passed on
    /// unchecked, central capacity met `metadata: 5` (cars never get `metadata`) and a car's runtime a
    /// bias of 10⁶ (helper-96).
    static func checkExtras(_ extras: RequestExtras) throws(APIError) {
        if let name = extras.undecodable {
            throw .invalidRequest(
                "Invalid value for '\(name)': a number in it is out of range, or it is not valid JSON.", param: name)
        }
        if let metadata = extras.metadata, metadata != .null {
            guard case .object(let fields) = metadata else {
                throw .invalidRequest(
                    "Invalid type for 'metadata': expected an object, but got \(Self.kind(metadata)) instead.",
                    param: "metadata")
            }
            if fields.count > 16 {
                throw .invalidRequest(
                    "'metadata' holds \(fields.count) pairs; at most 16 are allowed.", param: "metadata")
            }
            for key in fields.keys.sorted() {
                let param = "metadata.\(key.prefix(64))"
                if key.count > 64 {
                    throw .invalidRequest("A 'metadata' key is longer than 64 characters.", param: "metadata")
                }
                guard case .string(let value)? = fields[key] else {
                    throw .invalidRequest(
                        "Invalid type for '\(param)': expected a string, but got \(Self.kind(fields[key] ?? .null)) instead.",
                        param: param)
                }
                if value.count > 512 {
                    throw .invalidRequest("'\(param)' is longer than 512 characters.", param: param)
                }
            }
        }
        if let bias = extras.logitBias, bias != .null {
            guard case .object(let fields) = bias else {
                throw .invalidRequest(
                    "Invalid type for 'logit_bias': expected an object, but got \(Self.kind(bias)) instead.",
                    param: "logit_bias")
            }
            for key in fields.keys.sorted() {
                guard !key.isEmpty, key.utf8.count <= 10, key.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                    throw .invalidRequest(
                        "Invalid key in 'logit_bias': '\(key.prefix(64))'. Keys are token ids: non-negative integers.",
                        param: "logit_bias")
                }
                guard case .number(let value)? = fields[key], (-100...100).contains(value) else {
                    throw .invalidRequest(
                        "'logit_bias.\(key)' must be a number between -100 and 100.", param: "logit_bias.\(key)")
                }
            }
        }
    }

    private static func checkResponseFormat(_ format: JSONValue) throws(APIError) {
        guard case .object(let fields) = format else {
            throw .invalidRequest(
                "Invalid type for 'response_format': expected an object, but got \(Self.kind(format)) instead.",
                param: "response_format")
        }
        guard case .string(let type)? = fields["type"] else {
            throw .invalidRequest(
                "Missing required parameter: 'response_format.type'.", param: "response_format.type")
        }
        switch type {
        case "text", "json_object":
            return
        case "json_schema":
            guard case .object(let schema)? = fields["json_schema"] else {
                throw .invalidRequest(
                    "Missing required parameter: 'response_format.json_schema'.", param: "response_format.json_schema")
            }
            guard case .string(let name)? = schema["name"], !name.isEmpty else {
                throw .invalidRequest(
                    "Missing required parameter: 'response_format.json_schema.name'.",
                    param: "response_format.json_schema.name")
            }
            if let body = schema["schema"], !Self.isObject(body) {
                throw .invalidRequest(
                    "Invalid type for 'response_format.json_schema.schema': expected an object, but got \(Self.kind(body)) instead.",
                    param: "response_format.json_schema.schema")
            }
        default:
            throw .invalidRequest(
                "Invalid value: '\(type.prefix(64))'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                param: "response_format.type")
        }
    }

    private static func checkTool(_ tool: JSONValue, at index: Int) throws(APIError) {
        let path = "tools[\(index)]"
        guard case .object(let fields) = tool else {
            throw .invalidRequest(
                "Invalid type for '\(path)': expected an object, but got \(Self.kind(tool)) instead.", param: path)
        }
        // Every tool names its type (helper-96: `tools: [{}]` was passed on to the car), one of chat's two
        // (helper-127: a Responses tool such as `code_interpreter` was ignored); a custom tool passes on
        // as it is, a function is checked.
        guard case .string(let type)? = fields["type"], !type.isEmpty else {
            throw .invalidRequest("Missing required parameter: '\(path).type'.", param: "\(path).type")
        }
        guard type == "function" || type == "custom" else {
            throw .invalidRequest(
                "Invalid value: '\(type.prefix(64))'. Supported values are: 'function' and 'custom'.",
                param: "\(path).type")
        }
        guard type == "function" else { return }
        guard case .object(let function)? = fields["function"] else {
            throw .invalidRequest("Missing required parameter: '\(path).function'.", param: "\(path).function")
        }
        guard case .string(let name)? = function["name"], !name.isEmpty else {
            throw .invalidRequest(
                "Missing required parameter: '\(path).function.name'.", param: "\(path).function.name")
        }
        if let parameters = function["parameters"], !Self.isObject(parameters) {
            throw .invalidRequest(
                "Invalid type for '\(path).function.parameters': expected an object, but got \(Self.kind(parameters)) instead.",
                param: "\(path).function.parameters")
        }
    }

    private static func isObject(_ value: JSONValue) -> Bool {
        if case .object = value { true } else { false }
    }

    /// A value's JSON type as OpenAI's errors name it.
    private static func kind(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension RequestValidator {
    /// The legacy completion parameters a car's job cannot carry — `echo: true` (the prompt written
    /// before its completion), a `suffix`, `best_of` over 1 — so that, as `n`, only central capacity
    /// serves them: the first such one the body has, or nil. Before, a car answered without them and
    /// without a word (helper-122: `echo` gave the completion alone). A value of another type is a 400.
    static func legacyCentralParam(in body: ByteBuffer, members: [JSONBody.Member]) throws(APIError) -> String? {
        guard members.contains(where: { $0.name == "echo" || $0.name == "suffix" || $0.name == "best_of" }) else {
            return nil
        }
        func value(_ name: String) -> JSONValue? { JSONBody.value(of: name, in: body, members: members) }
        func refuse(_ name: String, _ expected: String, _ value: JSONValue) -> APIError {
            .invalidRequest(
                "Invalid type for '\(name)': expected \(expected), but got \(Self.kind(value)) instead.", param: name)
        }
        var needs: String?
        switch value("echo") {
        case nil, .null?, .bool(false)?: break
        case .bool(true)?: needs = "echo"
        case let other?: throw refuse("echo", "a boolean", other)
        }
        switch value("suffix") {
        case nil, .null?, .string("")?: break
        case .string?: needs = needs ?? "suffix"
        case let other?: throw refuse("suffix", "a string", other)
        }
        switch value("best_of") {
        case nil, .null?: break
        case .number(let count)? where count == count.rounded() && (1...20).contains(count):
            if count > 1 { needs = needs ?? "best_of" }
        default: throw .invalidRequest("'best_of' must be an integer between 1 and 20.", param: "best_of")
        }
        return needs
    }
}
