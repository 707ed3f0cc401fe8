package import FleetProtocol
package import NIOCore

/// Renders what the ``SSERelay`` delivers as the OpenAI Responses API: `/v1/responses` is another
/// view of the same relay, on the same cars, with the same failover and accounting.
///
/// Responsibilities:
/// 1. open a streamed answer when the relay commits its first attempt: `response.created`,
///    `response.in_progress`;
/// 2. a reasoning model's thinking before its text (`reasoning_content`): one `reasoning` item,
///    `response.output_item.added`, `response.content_part.added` (one `reasoning_text` part),
///    `response.reasoning_text.delta` a piece, closed (`….reasoning_text.done`, `….content_part.done`,
///    `….output_item.done`) when the text starts;
/// 3. the text: one assistant message, `response.output_item.added`, `response.content_part.added`
///    (one `output_text` part), then each delivered piece of choice 0 as `response.output_text.delta`;
///    a refusal (the model declined) as a `refusal` part of the same message, opened at its first
///    piece, `response.refusal.delta` a piece;
/// 4. close it: `response.output_text.done` (`response.refusal.done`), `response.content_part.done`
///    for each part, `response.output_item.done`, then `response.completed` — or
///    `response.incomplete` when the output limit ended it — carrying the whole `response` with its
///    usage;
/// 5. in place of chat's SSE error event, `response.failed` with the `response` so far;
/// 6. number every event (`sequence_number`, from 0) and name it on an `event:` line as OpenAI does;
/// 7. build the `stream: false` answer, the `response` object.
///
/// It decides nothing: the relay tells it what was delivered and when the answer ends. No
/// `[DONE]` is sent; the Responses stream ends after its terminal event. Thinking that comes after
/// the text has started is not written (the message is the last item).
package struct ResponsesRenderer: Sendable {
    /// Where the stream's items are.
    private enum Items: Sendable {
        /// None open yet.
        case none
        /// The reasoning item is open.
        case reasoning
        /// The message is open, at this output index (1 after a reasoning item).
        case message(outputIndex: Int)
    }

    /// A content part of the message: its text, or the model's refusal. Each opens at its first
    /// piece; their order is their content index.
    package enum Part: Sendable, Hashable {
        case text, refusal
    }

    /// A function call the stream opened (``toolCalls(_:text:refusal:reasoning:into:)``).
    /// Its name and arguments are ``joinedCalls``'s, at the same position.
    struct Call: Sendable {
        /// The call id the stream announced (the runtime's, else one made up, kept when a later piece
        /// brings the runtime's).
        var callID: String
        var outputIndex: Int
        /// `in_progress` while open, then `completed` or `incomplete`.
        var status: String
    }

    /// The response as it started: `in_progress`, no output, the request's echoed parameters.
    let template: ResponseObject
    /// The id of the one output message.
    package let messageID: String
    /// The id of the reasoning item, when the model thought first.
    package let reasoningID: String
    var sequence = 0
    private var items = Items.none
    /// The message's parts opened so far, in content-index order.
    private var parts: [Part] = []
    /// Whether the stream opened a reasoning item (output index 0).
    private var reasoningOpened = false
    /// The function calls the stream opened, in order; the last is open until the next or the end.
    var calls: [Call] = []
    /// The pieces joined as a whole answer joins them: which call each continues.
    var joinedCalls = ToolCallAccumulator()
    /// The message's text and refusal when the first function call closed it: later text is not
    /// rendered (an item is done before the next is added), and the answer's message keeps these.
    private var closedMessage: (text: String, refusal: String)?

    /// - Parameter template: the `response` object in progress (``ResponsesRequest/responseTemplate(id:createdAt:)``).
    package init(template: ResponseObject) {
        self.template = template
        let base = template.id.hasPrefix("resp_") ? String(template.id.dropFirst(5)) : template.id
        self.messageID = "msg_" + base
        self.reasoningID = "rs_" + base
    }

    /// The events that open a stream; its items open with their first piece.
    package mutating func begin(into out: inout ByteBuffer) {
        self.write(.init(type: "response.created", sequenceNumber: 0, response: self.template), into: &out)
        self.write(.init(type: "response.in_progress", sequenceNumber: 0, response: self.template), into: &out)
    }

    /// Whether the message is not open yet: call ``openMessage(reasoning:into:)`` before the first
    /// ``delta(token:of:into:)``.
    package var needsMessage: Bool {
        if case .message = self.items { return false }
        return self.calls.isEmpty
    }

    /// Opens the message (closing the reasoning item with all of `reasoning`, when one is open).
    /// After a function call, nothing: the message, if any, is done.
    package mutating func openMessage(reasoning: String, into out: inout ByteBuffer) {
        guard self.calls.isEmpty else { return }
        switch self.items {
        case .message: return
        case .none: break
        case .reasoning: self.closeReasoning(reasoning, into: &out)
        }
        let outputIndex = self.reasoningOpened ? 1 : 0
        self.items = .message(outputIndex: outputIndex)
        self.write(
            .init(
                type: "response.output_item.added", sequenceNumber: 0, outputIndex: outputIndex,
                item: .message(.init(id: self.messageID, status: "in_progress", content: []))), into: &out)
    }

    /// Closes the open reasoning item with all of `reasoning`.
    mutating func closeReasoning(_ reasoning: String, into out: inout ByteBuffer) {
        guard case .reasoning = self.items else { return }
        self.items = .none
        let item = self.reasoningItem(reasoning, status: "completed")
        self.write(
            .init(
                type: "response.reasoning_text.done", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                itemID: self.reasoningID, text: reasoning), into: &out)
        self.write(
            .init(
                type: "response.content_part.done", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                itemID: self.reasoningID, part: .reasoning(.init(text: reasoning))), into: &out)
        self.write(
            .init(type: "response.output_item.done", sequenceNumber: 0, outputIndex: 0, item: .reasoning(item)),
            into: &out)
    }

    /// Closes the open message: each part's `….done`, `response.content_part.done`, then
    /// `response.output_item.done` with `item`.
    mutating func closeMessage(
        text: String, refusal: String, item: ResponseObject.OutputItem, into out: inout ByteBuffer
    ) {
        guard case .message(let index) = self.items else { return }
        for (content, part) in self.parts.enumerated() {
            switch part {
            case .text:
                self.write(
                    .init(
                        type: "response.output_text.done", sequenceNumber: 0, outputIndex: index,
                        contentIndex: content, itemID: self.messageID, text: text, logprobs: []), into: &out)
            case .refusal:
                self.write(
                    .init(
                        type: "response.refusal.done", sequenceNumber: 0, outputIndex: index, contentIndex: content,
                        itemID: self.messageID, refusal: refusal), into: &out)
            }
            self.write(
                .init(
                    type: "response.content_part.done", sequenceNumber: 0, outputIndex: index, contentIndex: content,
                    itemID: self.messageID, part: .text(part == .text ? .init(text: text) : .refusal(refusal))),
                into: &out)
        }
        self.write(
            .init(type: "response.output_item.done", sequenceNumber: 0, outputIndex: index, item: item), into: &out)
        self.closedMessage = (text, refusal)
    }

    /// Before the first function call: the reasoning item or the message still open is closed (with
    /// everything delivered so far), and the calls' output indices follow them.
    mutating func closeItemsForCalls(text: String, refusal: String, reasoning: String, into out: inout ByteBuffer) {
        switch self.items {
        case .none: break
        case .reasoning: self.closeReasoning(reasoning, into: &out)
        case .message(let index):
            let item = ResponseObject.OutputItem.message(
                .init(id: self.messageID, status: "completed", content: self.content(text: text, refusal: refusal)))
            self.closeMessage(text: text, refusal: refusal, item: item, into: &out)
            self.items = .none
            self.nextOutputIndex = index + 1
            return
        }
        self.nextOutputIndex = self.reasoningOpened ? 1 : 0
    }

    /// The output index the next function call takes.
    var nextOutputIndex = 0

    /// The message's content parts for `text` and `refusal`, in the order the stream opened them.
    private func content(text: String, refusal: String) -> [ResponseObject.OutputText] {
        self.parts.map { $0 == .text ? ResponseObject.OutputText(text: text) : .refusal(refusal) }
    }

    /// The content index of the message's `part`, opening it (`response.content_part.added`) at its
    /// first piece. The message must be open.
    private mutating func contentIndex(of part: Part, into out: inout ByteBuffer) -> Int {
        if let index = self.parts.firstIndex(of: part) { return index }
        self.parts.append(part)
        self.write(
            .init(
                type: "response.content_part.added", sequenceNumber: 0, outputIndex: self.messageOutputIndex,
                contentIndex: self.parts.count - 1, itemID: self.messageID,
                part: .text(part == .text ? .init(text: "") : .refusal(""))), into: &out)
        return self.parts.count - 1
    }

    /// One delivered piece of thinking (its JSON string token at `range` of `payload`), before the
    /// text: opens the reasoning item at the first. After the text has started, nothing.
    package mutating func reasoning(token range: Range<Int>, of payload: ByteBuffer, into out: inout ByteBuffer) {
        guard self.calls.isEmpty, self.closedMessage == nil else { return }
        switch self.items {
        case .message: return
        case .reasoning: break
        case .none:
            guard !self.reasoningOpened else { return }  // closed before a call: not opened again
            self.items = .reasoning
            self.reasoningOpened = true
            self.write(
                .init(
                    type: "response.output_item.added", sequenceNumber: 0, outputIndex: 0,
                    item: .reasoning(self.reasoningItem(nil, status: "in_progress"))), into: &out)
            self.write(
                .init(
                    type: "response.content_part.added", sequenceNumber: 0, outputIndex: 0, contentIndex: 0,
                    itemID: self.reasoningID, part: .reasoning(.init(text: ""))), into: &out)
        }
        self.writeDelta(
            "event: response.reasoning_text.delta\ndata: {\"type\":\"response.reasoning_text.delta\",\"sequence_number\":",
            item: self.reasoningID, outputIndex: "0", token: range, of: payload, end: "}\n\n", into: &out)
    }

    /// One delivered piece of text, given as its JSON string token at `range` of `payload`'s
    /// readable bytes (validated by ``ChunkScanner``): written without decoding it
    /// (``JSONBody/writeJSONString(token:into:)``), and by hand: it is the hot path. The message must
    /// be open (``needsMessage``).
    package mutating func delta(token range: Range<Int>, of payload: ByteBuffer, into out: inout ByteBuffer) {
        guard case .message = self.items else { return }  // after a function call
        let part = self.parts.first == .text ? 0 : self.contentIndex(of: .text, into: &out)
        self.writeDelta(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":",
            item: self.messageID, outputIndex: self.messageOutputIndex == 0 ? "0" : "1", contentIndex: part,
            token: range, of: payload, end: ",\"logprobs\":[]}\n\n", into: &out)
    }

    /// One delivered piece of the model's refusal, as ``delta(token:of:into:)`` takes text: in the
    /// message's `refusal` part (helper-64: a refusal was an empty, completed answer). The message
    /// must be open (``needsMessage``).
    package mutating func refusal(token range: Range<Int>, of payload: ByteBuffer, into out: inout ByteBuffer) {
        guard case .message = self.items else { return }  // after a function call
        let part = self.contentIndex(of: .refusal, into: &out)
        self.writeDelta(
            "event: response.refusal.delta\ndata: {\"type\":\"response.refusal.delta\",\"sequence_number\":",
            item: self.messageID, outputIndex: self.messageOutputIndex == 0 ? "0" : "1", contentIndex: part,
            token: range, of: payload, end: "}\n\n", into: &out)
    }

    /// A delta event, by hand: `start` (its name, type and the sequence number's key), the next
    /// sequence number, the item and indices, the piece's JSON string token as it came, then `end`.
    private mutating func writeDelta(
        _ start: StaticString, item: String, outputIndex: StaticString, contentIndex: Int = 0, token range: Range<Int>,
        of payload: ByteBuffer, end: StaticString, into out: inout ByteBuffer
    ) {
        out.writeStaticString(start)
        out.writeString(String(self.sequence))
        self.sequence += 1
        out.writeStaticString(",\"item_id\":")
        JSONBody.writeJSONString(item, into: &out)
        out.writeStaticString(",\"output_index\":")
        out.writeStaticString(outputIndex)
        out.writeStaticString(contentIndex == 0 ? ",\"content_index\":0,\"delta\":" : ",\"content_index\":1,\"delta\":")
        payload.withUnsafeReadableBytes { bytes in
            JSONBody.writeJSONString(token: UnsafeRawBufferPointer(rebasing: bytes[range]), into: &out)
        }
        out.writeStaticString(end)
    }

    private var messageOutputIndex: Int {
        if case .message(let index) = self.items { return index }
        return 0
    }

    /// The events that close a stream, ending with `response.completed` or `response.incomplete`.
    ///
    /// - Parameters:
    ///   - text: everything delivered.
    ///   - reasoning: the thinking delivered before the text (empty: none).
    ///   - usage: the usage the relay reports.
    ///   - details: its cached and reasoning tokens, when the upstream said.
    ///   - finishReason: the last finish reason of choice 0 (`length` makes the answer incomplete).
    package mutating func finish(
        text: String, refusal: String = "", reasoning: String = "", usage: Usage, details: UsageDetails? = nil,
        finishReason: String?, into out: inout ByteBuffer
    ) {
        var response = self.template
        if self.calls.isEmpty {
            self.openMessage(reasoning: reasoning, into: &out)
            if self.parts.isEmpty { _ = self.contentIndex(of: .text, into: &out) }  // an empty answer: an empty text
        } else {
            // A call the output limit cut is incomplete: its arguments are no whole JSON text (helper-69).
            let cut = finishReason == "length" || finishReason == "content_filter"
            self.closeOpenCall(status: cut ? "incomplete" : "completed", into: &out)
        }
        // The items the stream announced, not what the relay kept: they must agree with the events.
        response.output = self.streamedOutput(text: text, refusal: refusal, reasoning: reasoning, status: "completed")
        self.settle(&response, usage: usage, details: details, finishReason: finishReason)
        if case .message = self.items, let item = response.output.first(where: { $0.message != nil }) {
            self.closeMessage(text: text, refusal: refusal, item: item, into: &out)
        }
        self.write(.init(type: "response." + response.status, sequenceNumber: 0, response: response), into: &out)
    }

    /// The items the stream opened, in order, as they end with `status`: the reasoning item, the
    /// message (with what it had when a function call closed it), the function calls.
    private func streamedOutput(text: String, refusal: String, reasoning: String, status: String)
        -> [ResponseObject.OutputItem]
    {
        var output: [ResponseObject.OutputItem] = []
        if self.reasoningOpened {
            let open = if case .reasoning = self.items { true } else { false }
            output.append(.reasoning(self.reasoningItem(reasoning, status: open ? status : "completed")))
        }
        if case .message = self.items {
            output.append(
                .message(.init(id: self.messageID, status: status, content: self.content(text: text, refusal: refusal)))
            )
        } else if let closed = self.closedMessage {
            output.append(
                .message(
                    .init(
                        id: self.messageID, status: "completed",
                        content: self.content(text: closed.text, refusal: closed.refusal))))
        }
        output += self.calls.indices.map { position in
            let call = self.calls[position]
            return .functionCall(
                self.streamedItem(position, status: call.status == "in_progress" ? status : call.status))
        }
        return output
    }

    /// The status, incomplete details and usage of a finished `response`.
    private func settle(
        _ response: inout ResponseObject, usage: Usage, details: UsageDetails?, finishReason: String?
    ) {
        let reason: String? =
            switch finishReason {
            case "length": "max_output_tokens"
            case "content_filter": "content_filter"
            default: nil
            }
        response.status = reason == nil ? "completed" : "incomplete"
        response.incompleteDetails = reason.map(ResponseObject.IncompleteDetails.init)
        response.usage = .init(usage, details: details)
        guard response.status != "completed" else { return }
        for index in response.output.indices {
            switch response.output[index] {
            case .message(var message) where message.status == "completed" && self.closedMessage == nil:
                message.status = response.status
                response.output[index] = .message(message)
            case .functionCall(var call) where index == response.output.count - 1:
                call.status = response.status  // the call being written when the limit came
                response.output[index] = .functionCall(call)
            default: break
            }
        }
    }

    /// `response.failed`, where chat completions send the SSE error event; the stream then ends.
    package mutating func failed(
        _ error: APIError, text: String, refusal: String = "", reasoning: String = "", usage: Usage,
        details: UsageDetails? = nil, into out: inout ByteBuffer
    ) {
        var response = self.template
        response.status = "failed"
        response.error = .init(code: "server_error", message: error.message)
        // What the stream opened: an item cut off is incomplete, and no message it never added.
        if case .none = self.items, !self.reasoningOpened, self.calls.isEmpty, self.closedMessage == nil {
            response.output = [.message(.init(id: self.messageID, status: "incomplete", content: [.init(text: text)]))]
        } else {
            if case .message = self.items, self.parts.isEmpty { self.parts = [.text] }
            response.output = self.streamedOutput(
                text: text, refusal: refusal, reasoning: reasoning, status: "incomplete")
        }
        response.usage = .init(usage, details: details)
        self.write(.init(type: "response.failed", sequenceNumber: 0, response: response), into: &out)
    }

    /// The `stream: false` answer: a reasoning item when there was thinking, then the message — none
    /// when the model only called functions —, then a `function_call` item a call. A refusal is its
    /// own part, after any text.
    package func response(
        text: String, refusal: String = "", reasoning: String = "", usage: Usage, details: UsageDetails? = nil,
        toolCalls: [ToolCall] = [], finishReason: String?
    ) -> ResponseObject {
        var response = self.template
        if !reasoning.isEmpty { response.output.append(.reasoning(self.reasoningItem(reasoning, status: "completed"))) }
        if toolCalls.isEmpty || !text.isEmpty || !refusal.isEmpty {
            let parts: [Part] = refusal.isEmpty ? [.text] : text.isEmpty ? [.refusal] : [.text, .refusal]
            let content = parts.map { $0 == .text ? ResponseObject.OutputText(text: text) : .refusal(refusal) }
            response.output.append(.message(.init(id: self.messageID, status: "completed", content: content)))
        }
        for (position, call) in toolCalls.enumerated() {
            response.output.append(.functionCall(self.functionCallItem(call, position: position, status: "completed")))
        }
        self.settle(&response, usage: usage, details: details, finishReason: finishReason)
        return response
    }

    private func reasoningItem(_ text: String?, status: String) -> ResponseObject.OutputReasoning {
        .init(id: self.reasoningID, status: status, content: text.map { [.init(text: $0)] } ?? [])
    }

    /// Writes one event with the next sequence number.
    mutating func write(_ event: ResponseEvent, into out: inout ByteBuffer) {
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
