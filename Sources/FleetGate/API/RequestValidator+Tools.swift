import FleetProtocol
import NIOCore

extension RequestValidator {
    /// OpenAI's rules for function calling, so an app learns of a broken conversation from a 400
    /// naming it, as from OpenAI — not from a car's runtime failing on it, or answering as if the
    /// calls had never been made (helper-69):
    /// - a `tool_choice` naming a function names one of `tools`;
    /// - a `tool` message has a `tool_call_id` that answers a call of the assistant message before
    ///   it (only `tool` messages between them), once;
    /// - an assistant message's `tool_calls` are each answered before the next message that is not a
    ///   `tool` message, or the end.
    static func checkToolUse(_ request: CompletionRequest) throws(APIError) {
        if case .object(let choice)? = request.toolChoice, case .object(let function)? = choice["function"],
            case .string(let name)? = function["name"], !Self.functionNames(request.tools).contains(name)
        {
            throw .invalidRequest(
                "Invalid value for 'tool_choice': no function named '\(name)' is in 'tools'.", param: "tool_choice")
        }
        guard let messages = request.messages else { return }
        var pending: [String] = []
        for index in messages.indices {
            let message = messages[index]
            if message.role == "tool" {
                guard let id = message.toolCallID else {
                    throw .invalidRequest(
                        "Missing parameter 'tool_call_id': messages with role 'tool' must have a 'tool_call_id'.",
                        param: "messages[\(index)].tool_call_id")
                }
                guard let answered = pending.firstIndex(of: id) else {
                    throw .invalidRequest(
                        "Invalid parameter: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (no call '\(id)' is waiting for an answer).",
                        param: "messages[\(index)].role")
                }
                pending.remove(at: answered)
                continue
            }
            try Self.checkAnswered(pending, before: index)
            if message.role == "assistant", let calls = message.toolCalls {
                // Each call has the id its answer names, and the function it called (helper-96: `[{}]` passed).
                for (n, call) in calls.enumerated() {
                    let path = "messages[\(index)].tool_calls[\(n)]"
                    guard let id = call.id, !id.isEmpty else {
                        throw .invalidRequest("Missing required parameter: '\(path).id'.", param: "\(path).id")
                    }
                    // A custom tool's call has no function (helper-98): its type is all that is read.
                    guard call.type == nil || call.type == "function" else { continue }
                    guard let name = call.function?.name, !name.isEmpty else {
                        throw .invalidRequest(
                            "Missing required parameter: '\(path).function.name'.", param: "\(path).function.name")
                    }
                }
                pending = calls.compactMap(\.id)
            }
        }
        try Self.checkAnswered(pending, before: messages.count)
    }

    /// Top-level members about tools that ``CompletionRequest`` does not read, checked from the body's
    /// `members` (``JSONBody/members(of:)``; a few names compared, nothing decoded for most bodies):
    /// `parallel_tool_calls` without `tools` is OpenAI's 400; the deprecated `functions` and
    /// `function_call` are refused and the app told to send `tools` — served as they were, a car's
    /// runtime ignored them and answered in prose (helper-127).
    static func checkLegacyToolMembers(_ members: [JSONBody.Member], in body: ByteBuffer, hasTools: Bool)
        throws(APIError)
    {
        for member in members {
            // The three names' lengths first: a string comparison a member cost ~750 instructions a request.
            let length = member.name.utf8.count
            guard length == 9 || length == 13 || length == 19 else { continue }
            switch member.name {
            case "functions", "function_call":
                guard JSONBody.value(of: member.name, in: body, members: members) != .null else { continue }
                throw .invalidRequest(
                    "'\(member.name)' is deprecated and not served here: send each function as a tool ({\"type\": \"function\", \"function\": {...}}) in 'tools', and 'tool_choice' instead of 'function_call'.",
                    param: member.name)
            case "parallel_tool_calls" where !hasTools:
                guard JSONBody.value(of: member.name, in: body, members: members) != .null else { continue }
                throw .invalidRequest(
                    "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed when 'tools' are specified.",
                    param: "parallel_tool_calls")
            default: continue
            }
        }
    }

    private static func checkAnswered(_ pending: [String], before index: Int) throws(APIError) {
        guard !pending.isEmpty else { return }
        throw .invalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: \(pending.joined(separator: ", "))",
            param: "messages")
    }

    /// The names of chat `tools`' functions.
    private static func functionNames(_ tools: JSONValue?) -> [String] {
        guard case .array(let list)? = tools else { return [] }
        return list.compactMap { tool in
            guard case .object(let fields) = tool, case .object(let function)? = fields["function"],
                case .string(let name)? = function["name"]
            else { return nil }
            return name
        }
    }
}
