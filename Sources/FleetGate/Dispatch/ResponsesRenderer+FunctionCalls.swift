package import FleetProtocol
package import NIOCore

/// Function calls on `/v1/responses`: each call the model streams (choice 0's `delta.tool_calls`)
/// becomes a `function_call` output item after the message — `response.output_item.added`,
/// `response.function_call_arguments.delta` a piece, then `response.function_call_arguments.done` and
/// `response.output_item.done` when the next call begins or the answer ends. The first call closes
/// the reasoning item or message still open: an item is done before the next is added, as OpenAI
/// streams them, so text after a call is not rendered.
extension ResponsesRenderer {
    /// One chunk's tool-call pieces of choice 0. `text`, `refusal`, `reasoning`: what was delivered so
    /// far, for the item the first call closes (read only while ``calls`` is empty).
    package mutating func toolCalls(
        _ pieces: [ToolCall], text: String, refusal: String, reasoning: String, into out: inout ByteBuffer
    ) {
        if self.calls.isEmpty {
            self.closeItemsForCalls(text: text, refusal: refusal, reasoning: reasoning, into: &out)
        }
        for piece in pieces {
            // Which call a piece continues, as a whole answer joins them (a new id is a new call).
            let placed = self.joinedCalls.place(piece)
            if placed.began {
                self.closeOpenCall(status: "completed", into: &out)
                let position = placed.position
                self.calls.append(
                    Call(
                        callID: self.functionCallItem(piece, position: position, status: "").callID,
                        outputIndex: self.nextOutputIndex, status: "in_progress"))
                self.nextOutputIndex += 1
                var item = self.streamedItem(position, status: "in_progress")
                item.arguments = ""  // the first piece's come as a delta
                self.write(
                    .init(
                        type: "response.output_item.added", sequenceNumber: 0,
                        outputIndex: self.calls[position].outputIndex,
                        item: .functionCall(item)), into: &out)
            }
            // Streamed while the call is open; a piece for a call already done (two calls' pieces
            // interleaved) is kept for the answer only.
            let call = self.calls[placed.position]
            if let arguments = piece.function?.arguments, !arguments.isEmpty, call.status == "in_progress" {
                self.write(
                    .init(
                        type: "response.function_call_arguments.delta", sequenceNumber: 0,
                        outputIndex: call.outputIndex, itemID: self.functionCallID(placed.position), delta: arguments),
                    into: &out)
            }
        }
    }

    /// Closes the last call, if open, with `status` (`incomplete` when the output limit cut it):
    /// `response.function_call_arguments.done`, `response.output_item.done`.
    mutating func closeOpenCall(status: String, into out: inout ByteBuffer) {
        guard let last = self.calls.indices.last, self.calls[last].status == "in_progress" else { return }
        self.calls[last].status = status
        let item = self.streamedItem(last, status: status)
        let outputIndex = self.calls[last].outputIndex
        self.write(
            .init(
                type: "response.function_call_arguments.done", sequenceNumber: 0, outputIndex: outputIndex,
                itemID: item.id, arguments: item.arguments, name: item.name), into: &out)
        self.write(
            .init(
                type: "response.output_item.done", sequenceNumber: 0, outputIndex: outputIndex,
                item: .functionCall(item)),
            into: &out)
    }

    /// The streamed call at `position` as an item with `status`: its name and arguments as joined so far,
    /// the call id it was announced with.
    func streamedItem(_ position: Int, status: String) -> ResponseObject.OutputFunctionCall {
        var item = self.functionCallItem(self.joinedCalls.call(at: position), position: position, status: status)
        item.callID = self.calls[position].callID
        return item
    }

    /// The item id of the `position`th call, `fc_…`.
    private func functionCallID(_ position: Int) -> String { "fc_\(self.idBase)_\(position)" }

    /// The response's id without its kind: `abc` for `resp_abc` (its message is `msg_abc`).
    private var idBase: String {
        self.messageID.hasPrefix("msg_") ? String(self.messageID.dropFirst(4)) : self.messageID
    }

    /// The `function_call` item of the `position`th call: `fc_…` its id, the model's call id (or one
    /// made alike when the runtime gave none), its name and arguments.
    func functionCallItem(_ call: ToolCall, position: Int, status: String) -> ResponseObject.OutputFunctionCall {
        .init(
            id: self.functionCallID(position),
            callID: call.id ?? ToolCall.missingIDPrefix(answerID: self.messageID) + String(position),
            name: call.function?.name ?? "", arguments: call.function?.arguments ?? "", status: status)
    }
}
