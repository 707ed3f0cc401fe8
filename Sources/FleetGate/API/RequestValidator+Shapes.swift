import FleetProtocol

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
        // Every tool names its type (helper-96: `tools: [{}]` was passed on to the car); other types
        // (custom tools) pass on as they are; a function is checked.
        guard case .string(let type)? = fields["type"], !type.isEmpty else {
            throw .invalidRequest("Missing required parameter: '\(path).type'.", param: "\(path).type")
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
