/// One event of a streamed Responses API answer (`event: <type>` + `data: <this>`).
///
/// One type for every event the fleet sends; each uses the fields its `type` has in OpenAI's
/// schema and leaves the others out: `response.created`, `response.in_progress`,
/// `response.completed`, `response.incomplete`, `response.failed` carry ``response``;
/// `response.output_item.added`/`.done` carry ``outputIndex`` and ``item``;
/// `response.content_part.added`/`.done` add ``itemID``, ``contentIndex`` and ``part``;
/// `response.output_text.delta` carries ``delta``, `response.output_text.done` ``text``;
/// `response.refusal.delta` ``delta``, `response.refusal.done` ``refusal``.
public struct ResponseEvent: Codable, Sendable, Hashable {
    public var type: String
    /// 0, 1, 2, … in the order the events are sent.
    public var sequenceNumber: Int
    public var response: ResponseObject?
    public var outputIndex: Int?
    public var contentIndex: Int?
    public var itemID: String?
    public var item: ResponseObject.OutputItem?
    public var part: ResponseObject.ContentPart?
    public var delta: String?
    public var text: String?
    public var refusal: String?
    public var logprobs: [JSONValue]?
    /// A function call's whole arguments (`response.function_call_arguments.done`).
    public var arguments: String?
    /// The called function's name (`response.function_call_arguments.done`, as OpenAI sends it).
    public var name: String?

    public init(
        type: String, sequenceNumber: Int, response: ResponseObject? = nil, outputIndex: Int? = nil,
        contentIndex: Int? = nil, itemID: String? = nil, item: ResponseObject.OutputItem? = nil,
        part: ResponseObject.ContentPart? = nil, delta: String? = nil, text: String? = nil,
        refusal: String? = nil, logprobs: [JSONValue]? = nil, arguments: String? = nil,
        name: String? = nil
    ) {
        self.arguments = arguments
        self.name = name
        self.refusal = refusal
        self.type = type
        self.sequenceNumber = sequenceNumber
        self.response = response
        self.outputIndex = outputIndex
        self.contentIndex = contentIndex
        self.itemID = itemID
        self.item = item
        self.part = part
        self.delta = delta
        self.text = text
        self.logprobs = logprobs
    }

    enum CodingKeys: String, CodingKey {
        case type, response, item, part, delta, text, refusal, logprobs, arguments, name
        case sequenceNumber = "sequence_number"
        case outputIndex = "output_index"
        case contentIndex = "content_index"
        case itemID = "item_id"
    }
}
