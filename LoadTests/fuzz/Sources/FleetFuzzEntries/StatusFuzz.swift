import FleetGate
import FleetGeo
import FleetProtocol
import Foundation

/// Target `status`: the input is what a car sends on its status stream (`GET /fleet/v1/status`,
/// NDJSON). It is fed to the gateway's ``StatusStreamDecoder`` — once whole and once in random
/// pieces — and every decoded message goes through the checks `CarSession` applies before it
/// touches the registry: a hello's required fields and model list, its credential (an HMAC token
/// under ``secret``; the seed corpus holds valid ones) and region; a state's model rates.
///
/// Invariants beyond "no crash":
/// - how the bytes are cut does not change the messages or the failure;
/// - the decoder never holds more than one line's bound (16 KiB) between reads;
/// - nothing is decoded after a failure (the tunnel is being closed).
enum StatusFuzz {
    /// The fleet secret the seed corpus's credentials are signed with.
    static let secret = "fuzz-fleet-secret-0123456789"
    static let credentials: FleetCredentials = {
        do { return try FleetCredentials(secret: Self.secret) } catch {
            fatalError("Internal inconsistency: the fuzz secret is refused: \(error)")
        }
    }()
    /// A fixed clock: the corpus's tokens expire in 2096.
    static let now = Date(timeIntervalSince1970: 1_800_000_000)
    static let map = RegionMap.default

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        var whole = StatusStreamDecoder()
        let all = whole.feed(bytes)
        var split = StatusStreamDecoder()
        var pieces: [Result<StatusMessage, StatusStreamDecoder.Failure>] = []
        for piece in Splits.pieces(of: bytes) {
            pieces += split.feed(piece)
            try check(split.bufferedBytes <= FleetStatus.maxLineBytes, "the decoder holds \(split.bufferedBytes) bytes")
        }
        try check(all == pieces, "cutting the bytes changed the messages")
        for (index, result) in all.enumerated() {
            switch result {
            case .success(let message):
                _ = Self.admit(message)
            case .failure:
                try check(index == all.count - 1, "a message decoded after a failure")
            }
        }
    }

    /// What `CarSession` would do with a message, short of the registry: nil when it is accepted,
    /// else the reason it would refuse the car.
    static func admit(_ message: StatusMessage) -> String? {
        switch message.type {
        case .hello:
            guard let vehicleID = message.vehicleID, let credential = message.credential,
                let region = message.region, message.hardware != nil, let models = message.models,
                let slots = message.slots, slots > 0, message.state != nil
            else { return "incomplete hello" }
            if let problem = FleetStatus.problem(with: models) { return problem }
            let grant: FleetCredentials.Grant
            do {
                grant = try Self.credentials.verify(credential, vehicleID: vehicleID, now: Self.now)
            } catch {
                return error.reason
            }
            guard grant.regions.contains(region) else { return "credential does not allow the claimed region" }
            guard Self.map.zone(ofRegion: region) != nil else { return "unknown region" }
            _ = Self.credentials.pseudonym(of: vehicleID, now: Self.now)
            return nil
        case .state:
            guard message.state != nil else { return "state without a state" }
            return message.models.flatMap { FleetStatus.problem(with: $0, requireOne: false) }
        case .drain:
            return nil
        }
    }
}
