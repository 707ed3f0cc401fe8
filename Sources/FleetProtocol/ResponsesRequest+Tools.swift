/// Function calling on `/v1/responses`, mapped onto chat completions' forms: the `function` tools,
/// `tool_choice`, and the input items that carry an earlier turn's calls and their results.
extension ResponsesRequest {
    /// The `function` tools in chat's form, `{"type":"function","function":{"name",…}}`; nil without
    /// tools. Each must have a `name` (OpenAI's own 400 otherwise); `description`, `parameters` and
    /// `strict` carry over.
    func chatTools() throws(APIError) -> JSONValue? {
        guard case .array(let list)? = self.tools, !list.isEmpty else { return nil }
        var tools: [JSONValue] = []
        for (index, tool) in list.enumerated() {
            // `refuseUnserved()` let only `function` tools through.
            guard case .object(let fields) = tool, case .string(let name)? = fields["name"], !name.isEmpty else {
                throw .invalidRequest(
                    "Missing required parameter: 'tools[\(index)].name'.", param: "tools[\(index)].name")
            }
            var function: [String: JSONValue] = ["name": .string(name)]
            for key in ["description", "parameters", "strict"] {
                if let value = fields[key], value != .null { function[key] = value }
            }
            tools.append(.object(["type": .string("function"), "function": .object(function)]))
        }
        return .array(tools)
    }

    /// `tool_choice` in chat's form: `auto`, `none` and `required` as they are; `{"type":"function",
    /// "name":…}` as `{"type":"function","function":{"name":…}}`. Anything else (`allowed_tools`, a
    /// built-in tool's type) is a 400 naming it; a choice other than `none`/`auto` without tools too.
    func chatToolChoice(hasTools: Bool) throws(APIError) -> JSONValue? {
        guard let choice = self.toolChoice, !choice.isEmptyOrNull else { return nil }
        switch choice {
        case .string("auto"), .string("none"):
            return choice
        case .string("required") where hasTools:
            return choice
        case .object(let fields) where hasTools:
            if case .string("function")? = fields["type"], case .string(let name)? = fields["name"] {
                return .object(["type": .string("function"), "function": .object(["name": .string(name)])])
            }
        default:
            break
        }
        throw .invalidRequest(
            hasTools
                ? "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": …}."
                : "'tool_choice' other than 'auto' or 'none' needs 'tools'.",
            param: "tool_choice")
    }

    /// Appends an input item of an earlier turn's function calling as chat messages, and says whether
    /// it was one: a `function_call` joins the assistant message before it (a turn's calls are one
    /// message's `tool_calls`), a `function_call_output` is a `tool` message for its `call_id`.
    static func appendToolItem(_ item: JSONValue, param: String, to messages: inout [ChatMessage]) throws(APIError)
        -> Bool
    {
        guard case .object(let fields) = item, case .string(let type)? = fields["type"] else { return false }
        switch type {
        case "function_call":
            guard case .string(let callID)? = fields["call_id"], case .string(let name)? = fields["name"],
                case .string(let arguments)? = fields["arguments"]
            else {
                throw .invalidRequest(
                    "'\(param)' (a function_call) must have 'call_id', 'name' and 'arguments' strings.", param: param)
            }
            let call = ToolCall(id: callID, function: .init(name: name, arguments: arguments))
            if let last = messages.last, last.role == "assistant", last.toolCallID == nil {
                messages[messages.count - 1].toolCalls = (last.toolCalls ?? []) + [call]
            } else {
                messages.append(ChatMessage(role: "assistant", content: "", toolCalls: [call]))
            }
            return true
        case "function_call_output":
            guard case .string(let callID)? = fields["call_id"] else {
                throw .invalidRequest("'\(param).call_id' is required.", param: "\(param).call_id")
            }
            messages.append(
                ChatMessage(
                    role: "tool", content: try Self.outputText(fields["output"], param: param), toolCallID: callID))
            return true
        default:
            return false
        }
    }

    /// OpenAI's pairing of an earlier turn's calls and outputs (helper-69: both were forwarded): a
    /// `function_call_output` answers a `function_call` before it with its `call_id`, and every
    /// `function_call` has its output — with OpenAI's own messages, so an app sees what it would there.
    static func checkCallPairs(_ items: [JSONValue]) throws(APIError) {
        var calls: [String] = []
        var answered: Set<String> = []
        for (index, item) in items.enumerated() {
            guard case .object(let fields) = item, case .string(let type)? = fields["type"],
                case .string(let callID)? = fields["call_id"]
            else { continue }
            if type == "function_call" {
                calls.append(callID)
            } else if type == "function_call_output" {
                guard calls.contains(callID) else {
                    throw .invalidRequest(
                        "No tool call found for function call output with call_id \(callID).",
                        param: "input[\(index)].call_id")
                }
                answered.insert(callID)
            }
        }
        if let open = calls.first(where: { !answered.contains($0) }) {
            throw .invalidRequest("No tool output found for function call \(open).", param: "input")
        }
    }

    /// A function call's output: a string, or text parts (`input_text`), joined.
    private static func outputText(_ output: JSONValue?, param: String) throws(APIError) -> String {
        switch output {
        case .string(let text)?:
            return text
        case .array(let parts)?:
            var text = ""
            for (index, part) in parts.enumerated() {
                guard case .object(let part) = part, case .string("input_text")? = part["type"],
                    case .string(let value)? = part["text"]
                else {
                    throw .invalidRequest(
                        "'\(param).output[\(index)]' is not served: a function's output must be text.",
                        param: "\(param).output[\(index)]")
                }
                text += value
            }
            return text
        default:
            throw .invalidRequest("'\(param).output' must be a string or text parts.", param: "\(param).output")
        }
    }
}
