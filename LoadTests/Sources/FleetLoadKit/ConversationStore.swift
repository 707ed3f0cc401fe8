import Synchronization

/// The load client's open conversations: for each, the turns so far as the client saw them (its
/// prompts and the answers it actually received — partial when cancelled, empty when failed), so
/// a later turn carries the real previous answer and the gateway's prefix affinity (issue #14)
/// sees the same prefix the car saw. Bounded: a conversation is dropped when its last turn
/// leaves (the plan knows which is last), and the plan keeps at most 256 open and 6 turns each.
final class ConversationStore: Sendable {
    /// A later turn that was due before the previous answer closed.
    struct Waiting: Sendable {
        var request: RunPlan.Request
        var index: Int
        var history: [String]
    }

    private struct Conversation {
        /// user, assistant, user, assistant, …
        var history: [String] = []
        /// The index of the turn whose answer is in ``history`` last (nil: none yet).
        var answered: Int?
        /// Later turns due before their previous answer closed, by the index of that previous
        /// turn (a turn can wait while its own previous turn is still waiting).
        var waiting: [Int: (request: RunPlan.Request, index: Int)] = [:]
    }

    private let open = Mutex<[Int: Conversation]>([:])

    /// The history to send with `request` now, or nil when its previous answer has not closed
    /// yet (it is kept, and ``answered(_:index:answer:)`` returns it once it has).
    func ready(_ request: RunPlan.Request, index: Int) -> [String]? {
        guard let previous = request.previous else { return [] }
        return self.open.withLock { open in
            var conversation = open[request.conversation] ?? Conversation()
            guard conversation.answered == previous else {
                conversation.waiting[previous] = (request, index)
                open[request.conversation] = conversation
                return nil
            }
            if !request.hasNextTurn { open[request.conversation] = nil }
            return conversation.history
        }
    }

    /// Records the answer of `request` (which has a next turn); returns that next turn if it was waiting.
    func answered(_ request: RunPlan.Request, index: Int, answer: String) -> Waiting? {
        self.open.withLock { open in
            var conversation = open[request.conversation] ?? Conversation()
            conversation.history += [LoadClient.prompt(tokens: request.promptTokens, seed: request.seed), answer]
            conversation.answered = index
            guard let waiting = conversation.waiting.removeValue(forKey: index) else {
                open[request.conversation] = conversation
                return nil
            }
            open[request.conversation] = waiting.request.hasNextTurn || !conversation.waiting.isEmpty ? conversation : nil
            return Waiting(request: waiting.request, index: waiting.index, history: conversation.history)
        }
    }
}
