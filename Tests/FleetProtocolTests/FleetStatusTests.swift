import FleetProtocol
import NIOCore
import Testing

@Suite("Status stream limits")
struct FleetStatusTests {
    static func offer(_ id: String, decode: Double = 30, prefill: Double = 500) -> ModelOffer {
        ModelOffer(id: id, decodeTokensPerSecond: decode, prefillTokensPerSecond: prefill)
    }

    @Test(
        "A model list is refused when empty, too long, badly named or with impossible rates",
        arguments: [
            ([], "no models"),
            ((0...FleetStatus.maxModels).map { offer("m\($0)") }, "too many models"),
            ([offer("")], "model id"),
            ([offer(String(repeating: "m", count: FleetStatus.maxModelIDBytes + 1))], "model id"),
            ([offer("m", decode: -1)], "rates"),
            ([offer("m", prefill: .infinity)], "rates"),
        ] as [([ModelOffer], String)])
    func refused(models: [ModelOffer], reason: String) {
        #expect(FleetStatus.problem(with: models)?.contains(reason) == true)
    }

    @Test("One to maxModels well-formed models are accepted; a state message may list none")
    func accepted() {
        #expect(FleetStatus.problem(with: [Self.offer("fleet-8b")]) == nil)
        #expect(FleetStatus.problem(with: (1...FleetStatus.maxModels).map { Self.offer("m\($0)") }) == nil)
        #expect(FleetStatus.problem(with: [], requireOne: false) == nil)
    }
}

@Suite("Status stream decoder")
struct StatusStreamDecoderTests {
    @Test(
        "Between messages the decoder holds no storage; a line cut across calls is kept until it ends",
        .timeLimit(.minutes(1)))
    func idleHoldsNothing() throws {
        let hello = StatusMessage.hello(
            vehicleID: "car-1", credential: String(repeating: "c", count: 200), hardware: .hw4,
            models: [ModelOffer(id: "fleet-8b", decodeTokensPerSecond: 30, prefillTokensPerSecond: 500)],
            region: "eu-central", slots: 2, policy: OwnerPolicy(),
            state: VehicleState(pluggedIn: true, chargePercent: 80, link: .wifi, slotsFree: 2))
        let line = Array(JSON.buffer(hello).readableBytesView) + [UInt8(ascii: "\n")]
        var decoder = StatusStreamDecoder()
        let cut = line.count / 2
        #expect(decoder.feed(line[..<cut]).isEmpty)
        #expect(decoder.bufferedBytes == cut && decoder.heldCapacity >= cut)
        let messages = decoder.feed(line[cut...])
        #expect(messages.count == 1)
        #expect((try messages.first?.get())?.vehicleID == "car-1")
        #expect(decoder.bufferedBytes == 0 && decoder.heldCapacity == 0)
        #expect(decoder.feed(line + line).count == 2 && decoder.heldCapacity == 0)
    }
}

@Suite("Status values out of range")
struct StatusValueTests {
    static func state(
        charge: Int = 80, slotsFree: Int = 1, departing: Int? = nil, uplink: Double? = nil, resets: Int? = nil
    ) -> StatusMessage {
        .state(
            VehicleState(
                pluggedIn: true, chargePercent: charge, link: .wifi, departingInSeconds: departing,
                slotsFree: slotsFree,
                uplinkMbps: uplink, cacheResets: resets))
    }

    /// helper-97: a charge of 200 %, -9 free slots and a departure in 2⁶⁰ s were taken as they came.
    @Test(
        "A state line with a value out of range fails the stream with the field's name",
        arguments: [
            (state(charge: 200), "charge_percent"), (state(charge: -50), "charge_percent"),
            (state(slotsFree: -9), "slots_free"), (state(departing: 1 << 60), "departing_in_s"),
            (state(uplink: -1), "uplink_mbps"),
            (state(resets: -1), "cache_resets"), (.drain(reason: "x", secondsLeft: -5), "seconds_left"),
        ] as [(StatusMessage, String)])
    func refused(message: StatusMessage, field: String) throws {
        var decoder = StatusStreamDecoder()
        let results = decoder.feed(Array(JSON.buffer(message).readableBytesView) + [UInt8(ascii: "\n")])
        try #require(results.count == 1)
        guard case .failure(let failure) = results[0] else {
            Issue.record("accepted: \(message)")
            return
        }
        #expect(failure.reason.contains(field), "\(failure.reason)")
    }

    @Test("A status line with a member written twice fails the stream, naming it (helper-128)")
    func duplicateMember() throws {
        let line = Array(JSON.buffer(Self.state()).readableBytesView)
        // The same line with `"v"` written again at its start, and a nested member twice.
        let twice = Array(#"{"v":1,"#.utf8) + line.dropFirst()
        var decoder = StatusStreamDecoder()
        let results = decoder.feed(twice + [UInt8(ascii: "\n")])
        guard case .failure(let failure)? = results.first else {
            Issue.record("accepted: \(String(decoding: twice, as: UTF8.self))")
            return
        }
        #expect(failure.reason.contains("'v'"), "\(failure.reason)")
        var honest = StatusStreamDecoder()
        guard case .success? = honest.feed(line + [UInt8(ascii: "\n")]).first else {
            Issue.record("the line itself was refused")
            return
        }
    }

    @Test("The ends of each range are accepted")
    func edges() {
        for message in [
            Self.state(charge: 0), Self.state(charge: 100), Self.state(slotsFree: 0),
            Self.state(departing: 0), Self.state(departing: FleetStatus.maxDepartingSeconds), Self.state(uplink: 0),
            Self.state(departing: -1),  // "leaving now", as agents before session 37 sent it
            Self.state(resets: 0), .drain(reason: "x", secondsLeft: 0),
        ] {
            #expect(FleetStatus.problem(with: message) == nil, "\(message)")
        }
    }
}

@Suite("Model lists from other servers")
struct ModelListTests {
    @Test("llama-cpp-python's /v1/models (no created, extra fields, spaced) decodes")
    func llamaCppPython() throws {
        let body =
            #"{"object": "list", "data": [{"id": "smollm2-135m", "object": "model", "owned_by": "me", "permissions": []}]}"#
        #expect(try JSON.decode(ModelList.self, from: Array(body.utf8)).data.map(\.id) == ["smollm2-135m"])
    }
}
