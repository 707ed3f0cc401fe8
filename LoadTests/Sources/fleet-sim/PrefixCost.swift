import ArgumentParser
import FleetProtocol
import FleetScheduler
import Foundation

/// What prefix-cache affinity costs per request (issue #14): hashing a chat body's message
/// prefixes (what `RequestValidator` adds when affinity is on), against decoding the body (what it
/// already does), and a decision with the prefix looked up against one without. Thread CPU time.
struct PrefixCost: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prefix-cost", abstract: "Per-request cost of prefix-cache affinity: hashing and lookup.")

    @Option(help: "Turns of the conversation (user messages).") var turns = 6
    @Option(help: "Iterations timed.") var iterations = 200_000
    @Option(help: "Cars in the pool the decisions draw from.") var cars = 1_000

    func run() throws {
        // A 6-turn body as a chat app sends it: a system prompt, then user/assistant pairs.
        var messages = [ChatMessage(role: "system", content: String(repeating: "You are a helpful assistant. ", count: 40))]
        for t in 1...self.turns {
            if t > 1 { messages.append(ChatMessage(role: "assistant", content: String(repeating: "Here is an answer. ", count: 40))) }
            messages.append(ChatMessage(role: "user", content: String(repeating: "What about this? ", count: 24)))
        }
        let body = try JSONEncoder().encode(CompletionRequest(model: "m", messages: messages, stream: true))
        print("body: \(body.count) bytes, \(messages.count) messages")
        let hasher = PrefixHasher()

        var sink = 0
        let decode = Self.time(self.iterations / 10) {
            let r = try! JSONDecoder().decode(CompletionRequest.self, from: body)
            sink &+= r.messages!.count
        }
        let hash = Self.time(self.iterations) {
            let decoded = messages
            sink &+= Int(truncatingIfNeeded: hasher.chunks(decoded.lazy.map { (role: $0.role, content: $0.content) }).last!.hash)
        }
        print(String(format: "JSON decode of the body (already done per request): %.2f µs", decode))
        print(String(format: "prefix hashing (%d chunks, SipHash-2-4): %.2f µs", messages.count, hash))

        for affinity in [false, true] {
            let registry = FleetRegistry(affinity: affinity ? PrefixAffinity() : .disabled)
            var ids: [CarID] = []
            for i in 0..<self.cars {
                let state = VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2)
                ids.append(
                    registry.register(
                        CarDescriptor(
                            vehicleID: "c\(i)", pseudonym: "p\(i)", region: "eu-central", zone: "eu", hardware: .hw4,
                            models: [ModelOffer(id: "m", decodeTokensPerSecond: 20, prefillTokensPerSecond: 1_200)],
                            slots: 2, policy: OwnerPolicy()), state: state
                    ).id)
            }
            var request = RequestProfile(model: "m", zone: "eu", promptTokens: body.count / 4)
            request.prefixes = affinity ? hasher.chunks(messages.lazy.map { (role: $0.role, content: $0.content) }) : []
            // Earlier turns served on a few cars, so the lookup finds holders.
            var previous = request
            previous.prefixes = Array(request.prefixes.dropLast(2))
            for id in ids.prefix(3) {
                if let choice = registry.evaluate(id, for: previous, now: 0), let lease = registry.acquire(choice, for: previous, now: 0) {
                    registry.finish(lease, Outcome(ttftMilliseconds: 300, tpotMilliseconds: 50, outputTokens: 10, succeeded: true), now: 1)
                }
            }
            var now = 2.0
            let decide = Self.time(self.iterations / 4) {
                now += 0.0001
                sink &+= registry.decide(request, now: now).choices.count
            }
            print(String(format: "decide, affinity %@: %.2f µs", affinity ? "on (3 holders)" : "off", decide))
        }
        if sink == 42 { print("") }
    }

    /// Mean thread CPU µs per call.
    static func time(_ n: Int, _ body: () -> Void) -> Double {
        for _ in 0..<min(n, 1_000) { body() }
        let start = threadCPU()
        for _ in 0..<n { body() }
        return Double(threadCPU() - start) / Double(n) / 1_000
    }

    static func threadCPU() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
