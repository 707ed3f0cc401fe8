package import FleetProtocol
package import NIOCore

/// Renders what the ``SSERelay`` delivers as the OpenAI Responses API: `/v1/responses` is another
/// view of the same relay, on the same cars, with the same failover and accounting.
///
/// Responsibilities:
/// 1. open a streamed answer when the relay commits its first attempt: `response.created`,
///    `response.in_progress`, `response.output_item.added` (one assistant message) and
///    `response.content_part.added` (one `output_text` part);
/// 2. write each delivered piece of text of choice 0 as `response.output_text.delta`;
/// 3. close it: `response.output_text.done`, `response.content_part.done`,
///    `response.output_item.done`, then `response.completed` — or `response.incomplete` when the
///    output limit ended it — carrying the whole `response` with its usage;
/// 4. in place of chat's SSE error event, `response.failed` with the `response` so far;
/// 5. number every event (`sequence_number`, from 0) and name it on an `event:` line as OpenAI does;
/// 6. build the `stream: false` answer, the `response` object.
///
/// It decides nothing: the relay tells it what was delivered and when the answer ends. No
/// `[DONE]` is sent; the Responses stream ends after its terminal event.
package struct ResponsesRenderer: Sendable {
    /// The response as it started: `in_progress`, no output, the request's echoed parameters.
    private let template: ResponseObject
    /// The id of the one output message.
    package let messageID: String
    private var sequence = 0

    /// - Parameter template: the `response` object in progress (``ResponsesRequest/responseTemplate(id:createdAt:)``).
    package init(template: ResponseObject) {
        self.template = template
        self.messageID = "msg_" + (template.id.hasPrefix("resp_") ? String(template.id.dropFirst(5)) : template.id)
    }

    /// The events that open a stream, up to the empty `output_text` part.
    package mutating func begin(into out: inout ByteBuffer) {
        self.write(.init(type: "response.created", sequenceNumber: 0, response: self.template), into: &out)
        self.write(.init(type: "response.in_progress", sequenceNumber: 0, response: self.template), into: &out)
        self.write(
            .init(
                type: "response.output_item.added", sequenceNumber: 0, outputIndex: 0,
                item: .init(id: self.messageID, status: "in_progress", content: [])), into: &out)
        self.write(
            .init(
                type: "response.content_part.added", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                itemID: self.messageID, part: .init(text: "")), into: &out)
    }

    /// One delivered piece of text, given as its JSON string token at `range` of `payload`'s
    /// readable bytes (validated by ``ChunkScanner``): written without decoding it
    /// (``JSONBody/writeJSONString(token:into:)``), and by hand: it is the hot path.
    package mutating func delta(token range: Range<Int>, of payload: ByteBuffer, into out: inout ByteBuffer) {
        out.writeStaticString(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":")
        out.writeString(String(self.sequence))
        self.sequence += 1
        out.writeStaticString(",\"item_id\":")
        JSONBody.writeJSONString(self.messageID, into: &out)
        out.writeStaticString(",\"output_index\":0,\"content_index\":0,\"delta\":")
        payload.withUnsafeReadableBytes { bytes in
            JSONBody.writeJSONString(token: UnsafeRawBufferPointer(rebasing: bytes[range]), into: &out)
        }
        out.writeStaticString(",\"logprobs\":[]}\n\n")
    }

    /// The events that close a stream, ending with `response.completed` or `response.incomplete`.
    ///
    /// - Parameters:
    ///   - text: everything delivered.
    ///   - usage: the usage the relay reports.
    ///   - details: its cached and reasoning tokens, when the upstream said.
    ///   - finishReason: the last finish reason of choice 0 (`length` makes the answer incomplete).
    package mutating func finish(
        text: String, usage: Usage, details: UsageDetails? = nil, finishReason: String?, into out: inout ByteBuffer
    ) {
        let response = self.response(text: text, usage: usage, details: details, finishReason: finishReason)
        let item = response.output[0]
        self.write(
            .init(
                type: "response.output_text.done", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                itemID: self.messageID, text: text, logprobs: []), into: &out)
        self.write(
            .init(
                type: "response.content_part.done", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                itemID: self.messageID, part: item.content[0]), into: &out)
        self.write(.init(type: "response.output_item.done", sequenceNumber: 0, outputIndex: 0, item: item), into: &out)
        self.write(.init(type: "response." + response.status, sequenceNumber: 0, response: response), into: &out)
    }

    /// `response.failed`, where chat completions send the SSE error event; the stream then ends.
    package mutating func failed(
        _ error: APIError, text: String, usage: Usage, details: UsageDetails? = nil, into out: inout ByteBuffer
    ) {
        var response = self.template
        response.status = "failed"
        response.error = .init(code: "server_error", message: error.message)
        response.output = [.init(id: self.messageID, status: "incomplete", content: [.init(text: text)])]
        response.usage = .init(usage, details: details)
        self.write(.init(type: "response.failed", sequenceNumber: 0, response: response), into: &out)
    }

    /// The finished `response` object: the stream's last event, or the `stream: false` answer.
    package func response(text: String, usage: Usage, details: UsageDetails? = nil, finishReason: String?)
        -> ResponseObject
    {
        var response = self.template
        let reason: String? =
            switch finishReason {
            case "length": "max_output_tokens"
            case "content_filter": "content_filter"
            default: nil
            }
        response.status = reason == nil ? "completed" : "incomplete"
        response.incompleteDetails = reason.map(ResponseObject.IncompleteDetails.init)
        response.output = [.init(id: self.messageID, status: response.status, content: [.init(text: text)])]
        response.usage = .init(usage, details: details)
        return response
    }

    /// Writes one event with the next sequence number.
    private mutating func write(_ event: ResponseEvent, into out: inout ByteBuffer) {
        var event = event
        event.sequenceNumber = self.sequence
        self.sequence += 1
        out.writeStaticString("event: ")
        out.writeString(event.type)
        out.writeStaticString("\ndata: ")
        out.writeImmutableBuffer(JSON.buffer(event))
        out.writeStaticString("\n\n")
    }
}
