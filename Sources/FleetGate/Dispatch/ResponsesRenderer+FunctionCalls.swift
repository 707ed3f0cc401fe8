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
    /// far, for the item the first call closes.
    package mutating func toolCalls(
        _ pieces: [ToolCall], text: String, refusal: String, reasoning: String, into out: inout ByteBuffer
    ) {
        if self.calls.isEmpty {
            self.closeItemsForCalls(text: text, refusal: refusal, reasoning: reasoning, into: &out)
        }
        for piece in pieces {
            // Which call a piece continues, as a whole answer joins them (a new id is a new call).
            let placed = self.joinedCalls.place(piece)
            guard placed.began else {
                let position = placed.position
                if self.calls[position].item.name.isEmpty, let name = piece.function?.name {
                    self.calls[position].item.name = name
                }
                self.appendArguments(piece.function?.arguments ?? "", to: position, into: &out)
                continue
            }
            self.closeOpenCall(status: "completed", into: &out)
            var item = self.functionCallItem(piece, position: self.calls.count, status: "in_progress")
            let arguments = item.arguments
            item.arguments = ""
            self.calls.append(Call(item: item, outputIndex: self.nextOutputIndex))
            self.nextOutputIndex += 1
            self.write(
                .init(
                    type: "response.output_item.added", sequenceNumber: 0, outputIndex: self.calls.last!.outputIndex,
                    item: .functionCall(item)), into: &out)
            self.appendArguments(arguments, to: self.calls.count - 1, into: &out)
        }
    }

    /// More of a call's arguments: kept, and streamed while the call is open (a piece for a call
    /// already done — pieces of two calls interleaved — is kept for the answer only).
    private mutating func appendArguments(_ arguments: String, to position: Int, into out: inout ByteBuffer) {
        guard !arguments.isEmpty else { return }
        self.calls[position].item.arguments += arguments
        guard self.calls[position].item.status == "in_progress" else { return }
        let call = self.calls[position]
        self.write(
            .init(
                type: "response.function_call_arguments.delta", sequenceNumber: 0, outputIndex: call.outputIndex,
                itemID: call.item.id, delta: arguments), into: &out)
    }

    /// Closes the last call, if open, with `status` (`incomplete` when the output limit cut it):
    /// `response.function_call_arguments.done`, `response.output_item.done`.
    mutating func closeOpenCall(status: String, into out: inout ByteBuffer) {
        guard let last = self.calls.indices.last, self.calls[last].item.status == "in_progress" else { return }
        self.calls[last].item.status = status
        let call = self.calls[last]
        self.write(
            .init(
                type: "response.function_call_arguments.done", sequenceNumber: 0, outputIndex: call.outputIndex,
                itemID: call.item.id, arguments: call.item.arguments), into: &out)
        self.write(
            .init(
                type: "response.output_item.done", sequenceNumber: 0, outputIndex: call.outputIndex,
                item: .functionCall(call.item)), into: &out)
    }

    /// The `function_call` item of the `position`th call: `fc_…` its id, the model's call id (or one
    /// made alike when the runtime gave none), its name and arguments.
    func functionCallItem(_ call: ToolCall, position: Int, status: String) -> ResponseObject.OutputFunctionCall {
        let base = self.messageID.hasPrefix("msg_") ? String(self.messageID.dropFirst(4)) : self.messageID
        return .init(
            id: "fc_\(base)_\(position)", callID: call.id ?? "call_\(base)_\(position)",
            name: call.function?.name ?? "", arguments: call.function?.arguments ?? "", status: status)
    }
}
