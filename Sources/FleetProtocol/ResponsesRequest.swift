/// The body of `POST /v1/responses` (OpenAI's Responses API): the subset the fleet serves — text
/// in, text and function calls out — and the parameters it must recognise to refuse them.
///
/// The fleet's cars speak chat completions only, so a Responses request is served by mapping it
/// onto a ``CompletionRequest`` (``chatRequest()``); the car protocol does not change. Parameters
/// that would need state the gateway does not keep (`previous_response_id`, `store: true`,
/// `conversation`, `background`, stored `prompt`s) or built-in tools that run outside the car
/// are decoded only to be refused with a 400 that names them.
///
/// Decoding is lenient about fields it does not use (they are ignored), as for chat.
public struct ResponsesRequest: Decodable, Sendable, IntegerMembers {
    public static let integerMembers = ["max_output_tokens", "seed", "top_logprobs"]

    /// `input`: one user message as a string, or a list of items.
    public enum Input: Decodable, Sendable, Hashable {
        case text(String)
        case items([JSONValue])

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let text = try JSONValue.string(c) {
                self = .text(text)
            } else {
                self = .items(try c.decode([JSONValue].self))
            }
        }
    }

    public var model: String
    public var input: Input?
    public var instructions: String?
    public var maxOutputTokens: Int?
    public var temperature: Double?
    public var topP: Double?
    public var stream: Bool?
    /// Up to 16 string pairs, echoed in the response; never sent to a car, never logged.
    public var metadata: [String: String]?
    public var user: String?
    public var seed: Int?

    // Recognised to be refused (or checked) — see ``chatRequest()``.
    public var tools: JSONValue?
    public var toolChoice: JSONValue?
    /// Echoed (true when left out, as OpenAI's default); the model's runtime decides.
    public var parallelToolCalls: Bool?
    public var background: Bool?
    public var previousResponseID: String?
    public var store: Bool?
    public var conversation: JSONValue?
    public var prompt: JSONValue?
    public var text: JSONValue?
    public var topLogprobs: Int?
    public var include: [String]?

    enum CodingKeys: String, CodingKey {
        case model, input, instructions, temperature, stream, metadata, user, seed, tools, background, store
        case conversation, prompt, text, include
        case topLogprobs = "top_logprobs"
        case maxOutputTokens = "max_output_tokens"
        case topP = "top_p"
        case toolChoice = "tool_choice"
        case parallelToolCalls = "parallel_tool_calls"
        case previousResponseID = "previous_response_id"
    }

    /// The built-in tool types of the Responses API, run by the platform rather than the model.
    public static let builtInTools: Set<String> = [
        "web_search", "web_search_preview", "web_search_2025_08_26", "web_search_preview_2025_03_11",
        "file_search", "code_interpreter", "computer_use", "computer_use_preview", "image_generation", "mcp",
        "local_shell", "shell", "apply_patch",
    ]
}
