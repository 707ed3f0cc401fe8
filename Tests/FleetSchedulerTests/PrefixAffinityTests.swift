import FleetProtocol
import FleetScheduler
import Testing

@Suite("Prefix-cache affinity: the keyed prefix hashes, the LRU map and the score term")
struct PrefixAffinityTests {
    static let hasher = PrefixHasher(k0: 1, k1: 2)

    /// A conversation of `turns` user turns (with the assistant's answers between them).
    /// ~500 prompt tokens of system prompt, ~100 per user message, ~400 per answer (bytes ÷ 4).
    static func conversation(_ turns: Int, topic: String = "tides") -> [(role: String, content: String)] {
        let system = "You answer questions about \(topic). " + String(repeating: "Be precise and brief. ", count: 90)
        var messages: [(role: String, content: String)] = [("system", system)]
        for t in 1...turns {
            if t > 1 { messages.append(("assistant", String(repeating: "Answer \(t - 1) about \(topic). ", count: 80))) }
            messages.append(("user", "Question \(t) about \(topic)? " + String(repeating: "Please. ", count: 45)))
        }
        return messages
    }

    @Test("SipHash-2-4 gives the reference test vectors (key 00…0f; messages 00…0e of length 0 and 15)")
    func sipHashVectors() {
        func hash(_ n: Int) -> UInt64 {
            var state = SipHash(k0: 0x0706_0504_0302_0100, k1: 0x0f0e_0d0c_0b0a_0908)
            let bytes = (0..<n).map { UInt8($0) }
            bytes.withUnsafeBufferPointer { state.append($0) }
            return state.finalize()
        }
        #expect(hash(0) == 0x726f_db47_dd0e_0e31)
        #expect(hash(15) == 0xa129_ca61_49be_45e5)
        #expect(hash(8) == 0x93f5_f579_9a93_2462)
    }

    @Test("A chat request's messages hash as their (role, text) pairs do, within the limit")
    func chatMessagesMatchPairs() {
        for turns in [1, 2, 5] {
            let pairs = Self.conversation(turns, topic: "é\u{1F30A} \(turns)")
            let messages = pairs.map { ChatMessage(role: $0.role, content: $0.content) }
            #expect(Self.hasher.chunks(messages) == Self.hasher.chunks(pairs))
            for limit in [0, 1, 3, 100] {
                #expect(Self.hasher.chunks(messages, limit: limit) == Self.hasher.chunks(pairs, limit: limit))
            }
        }
        #expect(Self.hasher.chunks([ChatMessage]()).isEmpty)
    }

    @Test("The next turn shares every chunk of the last one; another key or another history shares none")
    func chunksArePrefixes() {
        let turn2 = Self.hasher.chunks(Self.conversation(2))
        let turn3 = Self.hasher.chunks(Self.conversation(3))
        #expect(turn2.count == 4 && turn3.count == 6)
        #expect(Array(turn3.prefix(4)) == turn2)
        #expect(turn3[5].tokens > turn3[3].tokens)
        let otherKey = PrefixHasher(k0: 1, k1: 3).chunks(Self.conversation(2))
        #expect(Set(otherKey.map(\.hash)).isDisjoint(with: turn2.map(\.hash)))
        let otherTopic = Self.hasher.chunks(Self.conversation(3, topic: "bees"))
        #expect(Set(otherTopic.map(\.hash)).isDisjoint(with: turn3.map(\.hash)))
        // The role is part of the hash: the same text said by another role is another prefix.
        let swapped = Self.hasher.chunks([("user", "You answer questions about tides.")])
        #expect(swapped[0].hash != turn2[0].hash)
    }

    @Test("The map is a bounded LRU with a TTL, and answers the longest prefix each holder holds")
    func mapLRU() {
        var map = PrefixCacheMap(capacity: 3, ttl: 600, holdersPerEntry: 2)
        let a = Self.hasher.chunks(Self.conversation(3, topic: "a"))
        let car1 = PrefixCacheMap.Holder(id: 1, epoch: 0)
        let car2 = PrefixCacheMap.Holder(id: 2, epoch: 0)
        map.record(a[1], holder: car1, now: 0)  // turn 1 served on car 1
        map.record(a[3], holder: car2, now: 1)  // turn 2 on car 2
        let found = map.lookup(a, now: 2)
        #expect(found.map(\.holder.id) == [2, 1])
        #expect(found.map(\.tokens) == [a[3].tokens, a[1].tokens])
        // Capacity 3: a fourth entry evicts the least recently used (a[1], car 1's).
        for (i, topic) in ["b", "c"].enumerated() {
            map.record(Self.hasher.chunks(Self.conversation(1, topic: topic))[1], holder: car1, now: 3 + Double(i))
        }
        #expect(map.count == 3)
        #expect(map.lookup(a, now: 6).map(\.holder.id) == [2])
        // At most two holders per entry, the most recent first.
        map.record(a[3], holder: car1, now: 7)
        map.record(a[3], holder: PrefixCacheMap.Holder(id: 3, epoch: 0), now: 8)
        #expect(map.lookup(a, now: 9).map(\.holder.id) == [3, 1])
        // Ten minutes without use: gone.
        #expect(map.lookup(a, now: 8 + 601).isEmpty)
        map.expire(now: 10_000)
        #expect(map.count == 0)
    }

    /// A turn of a conversation; its prompt is the chunks' estimate.
    static func conversationRequest(_ turns: Int, topic: String = "tides") -> RequestProfile {
        let chunks = Self.hasher.chunks(Self.conversation(turns, topic: topic))
        var r = request(prompt: Int(chunks.last!.tokens))
        r.prefixes = chunks
        r.ttftObjectiveMilliseconds = 2_000
        return r
    }

    /// Serves `request` on `choice`'s car; the observed prefill is `prefillMs`.
    static func serve(_ registry: FleetRegistry, _ choice: Choice, _ request: RequestProfile, prefillMs: Double, now: Double) {
        let lease = registry.acquire(choice, for: request, now: now)!
        registry.finish(
            lease,
            Outcome(
                ttftMilliseconds: 55 + prefillMs, tpotMilliseconds: 50, promptTokens: request.promptTokens,
                outputTokens: 20, succeeded: true), now: now + 1)
    }

    @Test("Turn 2 goes to the car that served turn 1 when both are idle, to the other when it is busy")
    func holderWinsUnlessBusy() {
        let registry = FleetRegistry(policy: .predictive)
        let cars = [registry.register(descriptor("a", slots: 1), state: parked).id,
                    registry.register(descriptor("b", slots: 1), state: parked).id]
        let turn1 = Self.conversationRequest(1)
        let first = registry.decide(turn1, now: 0).choices[0]
        Self.serve(registry, first, turn1, prefillMs: 500, now: 0)
        let turn2 = Self.conversationRequest(2)
        let decision = registry.decide(turn2, now: 5)
        #expect(decision.choices[0].car == first.car)
        #expect(decision.choices[0].cachedPrefixTokens > 0)
        #expect(decision.choices[0].prefixCreditMilliseconds > 0)
        // Busy: its one slot taken by another request.
        let holder = first.car!
        let other = cars.first { $0 != holder }!
        let busy = registry.acquire(holder, for: request(prompt: 100), now: 6)!
        #expect(registry.decide(turn2, now: 6).cars.first == other)
        registry.finish(busy, .failed, now: 7)
        // Gone: a car that left holds nothing (its id's generation), even when it reconnects.
        registry.remove(holder, now: 40)
        let back = registry.register(descriptor(holder == cars[0] ? "a" : "b", slots: 1), state: parked, now: 40).id
        #expect(registry.decide(turn2, now: 41).choices.allSatisfy { $0.cachedPrefixTokens == 0 })
        _ = back
    }

    @Test("A cache reset reported in telemetry drops the car's prefixes")
    func cacheResetDrops() {
        let registry = FleetRegistry(policy: .predictive)
        var state = parked
        state.cacheResets = 0
        let car = registry.register(descriptor("a", slots: 1), state: state).id
        _ = registry.register(descriptor("b", slots: 1), state: parked).id
        let turn1 = Self.conversationRequest(1)
        Self.serve(registry, registry.evaluate(car, for: turn1, now: 0)!, turn1, prefillMs: 500, now: 0)
        let turn2 = Self.conversationRequest(2)
        #expect(registry.decide(turn2, now: 5).choices[0].cachedPrefixTokens > 0)
        state.cacheResets = 1
        registry.update(car, state: state, now: 6)
        #expect(registry.decide(turn2, now: 7).choices.allSatisfy { $0.cachedPrefixTokens == 0 })
    }

    @Test("A car whose 'hits' are not faster loses its credit; one whose hits are keeps it")
    func learnsHitProbability() {
        let registry = FleetRegistry(policy: .predictive)
        let liar = registry.register(descriptor("nocache", slots: 1), state: parked).id
        let honest = registry.register(descriptor("cache", slots: 1), state: parked).id
        // hw4: 1,200 prompt tok/s. Each conversation: turn 1 (~610 tokens), then turn 2 (~1,120,
        // of which turn 1's held): a hit prefills ~510 tokens (~425 ms), a miss all (~930 ms).
        var verdicts = 0
        for i in 0..<12 {
            for car in [liar, honest] {
                let topic = "\(car)-\(i)"
                let t1 = Self.conversationRequest(1, topic: topic)
                let full1 = Double(t1.promptTokens) / 1.2
                Self.serve(registry, registry.evaluate(car, for: t1, now: Double(i))!, t1, prefillMs: full1, now: Double(i))
                let t2 = Self.conversationRequest(2, topic: topic)
                let choice = registry.decide(t2, now: Double(i)).choices.first { $0.car == car }
                guard let choice, choice.cachedPrefixTokens > 0 else { continue }
                verdicts += 1
                let full2 = Double(t2.promptTokens) / 1.2
                let rest = Double(t2.promptTokens - choice.cachedPrefixTokens) / 1.2
                Self.serve(registry, choice, t2, prefillMs: car == liar ? full2 : rest, now: Double(i))
            }
        }
        #expect(verdicts == 24)
        let liarP = registry.snapshot(liar)!.prefixHitProbability
        let honestP = registry.snapshot(honest)!.prefixHitProbability
        #expect(liarP < 0.1, "no-cache car's hit probability \(liarP)")
        #expect(honestP > 0.9, "caching car's hit probability \(honestP)")
        // Its prefill slowdown is still learned right (≈ 1), not taken for a fast car.
        #expect(abs(registry.snapshot(liar)!.learned["m"]!.prefillSlowdown - 1) < 0.25)
    }
}
