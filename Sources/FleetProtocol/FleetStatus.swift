/// The car's status stream (DESIGN.md, Contracts): `GET /fleet/v1/status` opened by the gateway
/// on every tunnel, answered by the car as `application/x-ndjson`, one JSON object per line
/// (at most ``maxLineBytes``), each with `"v":1` and a `"type"`.
public enum FleetStatus {
    /// The path the gateway opens.
    public static let path = "/fleet/v1/status"
    /// The content type of the answer.
    public static let contentType = "application/x-ndjson"
    /// The schema version this build speaks.
    public static let version = 1
    /// The longest line accepted.
    public static let maxLineBytes = 16 * 1024
    /// The most models one car may offer (a car runs one or two; the registry keeps a pool per model).
    public static let maxModels = 32
    /// The longest model id accepted, in UTF-8 bytes.
    public static let maxModelIDBytes = 128

    /// The largest context window a model may declare, tokens (2²⁴: past every served model's).
    public static let maxContextTokens = 1 << 24

    /// `tokens` as a hello may say a context window (1 to ``maxContextTokens``), else nil.
    public static func contextWindow(_ tokens: Int) -> Int? {
        (1...Self.maxContextTokens).contains(tokens) ? tokens : nil
    }

    /// Why a car's model list is a protocol error, or nil when it is acceptable: a hello must offer
    /// at least one model and at most ``maxModels``, each with a non-empty id of at most
    /// ``maxModelIDBytes``, finite, non-negative rates and a context window, when said, of 1 to
    /// ``maxContextTokens``.
    /// - Parameter requireOne: false for a state message, which may omit rates.
    public static func problem(with models: [ModelOffer], requireOne: Bool = true) -> String? {
        if requireOne && models.isEmpty { return "hello lists no models" }
        if models.count > Self.maxModels { return "too many models (\(models.count) > \(Self.maxModels))" }
        for model in models {
            if model.id.isEmpty || model.id.utf8.count > Self.maxModelIDBytes {
                return "model id empty or over \(Self.maxModelIDBytes) bytes"
            }
            guard model.decodeTokensPerSecond.isFinite, model.prefillTokensPerSecond.isFinite,
                model.decodeTokensPerSecond >= 0, model.prefillTokensPerSecond >= 0
            else { return "model rates must be finite and non-negative" }
            if let window = model.contextTokens, Self.contextWindow(window) == nil {
                return "context_tokens outside 1-\(Self.maxContextTokens)"
            }
        }
        return nil
    }

    /// The longest departure a car may announce: 30 days (a car that knows no departure sends none).
    public static let maxDepartingSeconds = 30 * 86_400
    /// The most free slots a car may report (the gateway counts at most ``maxSlots`` a car).
    public static let maxSlotsFree = 4096
    /// The most slots the gateway counts of one car (a registry bound: a car cannot claim the zone's
    /// traffic); a car offering more is sent at most this many jobs at once.
    public static let maxSlots = 64
    /// The fastest uplink a car may report, Mbit/s.
    public static let maxUplinkMbps = 100_000.0

    /// Why a message's values are a protocol error, or nil when they are in range: a state of charge
    /// (the car's and its owner's floor) within 0–100, counts that are not negative, a departure
    /// no later than ``maxDepartingSeconds``, a finite uplink within ``maxUplinkMbps`` (helper-97: a charge of
    /// 200 % and a departure in 2⁶⁰ s were taken as they came). A model list is checked with the hello
    /// or the state it comes in (``problem(with:requireOne:)``).
    public static func problem(with message: StatusMessage) -> String? {
        if let state = message.state {
            guard (0...100).contains(state.chargePercent) else { return "charge_percent outside 0-100" }
            guard (0...Self.maxSlotsFree).contains(state.slotsFree) else { return "slots_free out of range" }
            // A negative departure is "leaving now" (agents before session 37 sent one from their state file).
            if let departing = state.departingInSeconds, departing > Self.maxDepartingSeconds {
                return "departing_in_s over \(Self.maxDepartingSeconds)"
            }
            if let uplink = state.uplinkMbps, !(uplink.isFinite && (0...Self.maxUplinkMbps).contains(uplink)) {
                return "uplink_mbps out of range"
            }
            if let resets = state.cacheResets, resets < 0 { return "cache_resets negative" }
        }
        if let policy = message.policy, !(0...100).contains(policy.minChargePercent) {
            return "min_charge_percent outside 0-100"
        }
        if let seconds = message.secondsLeft, seconds < 0 { return "seconds_left negative" }
        if let queue = message.queue, queue < 0 { return "queue negative" }
        if let cache = message.cache, cache.sequences < 0 || (cache.tokens ?? 0) < 0 { return "cache sizes negative" }
        return nil
    }
}

/// The car's hardware class (calibration in `docs/fleet-model.md`, from shared FLEET.md).
public enum HardwareClass: String, Codable, Sendable, CaseIterable, Hashable {
    case hw3, hw4, ai5
}

/// How the car reaches the internet.
public enum LinkType: String, Codable, Sendable, CaseIterable, Hashable {
    case wifi, cellular, satellite, ethernet
}

/// What the owner allows.
public struct OwnerPolicy: Codable, Sendable, Hashable {
    /// Serve only while plugged in (the default: 1 kW for 8 h is ≈ 11 % of a 75 kWh pack, FLEET.md).
    public var onlyWhilePlugged: Bool
    /// Stop serving below this state of charge (0–100).
    public var minChargePercent: Int

    public init(onlyWhilePlugged: Bool = true, minChargePercent: Int = 50) {
        self.onlyWhilePlugged = onlyWhilePlugged
        self.minChargePercent = minChargePercent
    }

    enum CodingKeys: String, CodingKey {
        case onlyWhilePlugged = "only_while_plugged"
        case minChargePercent = "min_charge_percent"
    }
}

/// A model a car serves, with the rates it measured.
public struct ModelOffer: Codable, Sendable, Hashable {
    public var id: String
    /// Measured or profiled decode rate, tokens per second for one stream.
    public var decodeTokensPerSecond: Double
    /// Measured or profiled prefill rate, prompt tokens per second.
    public var prefillTokensPerSecond: Double
    /// The model's context window on this car, tokens (prompt and completion together); nil when
    /// the car does not say. The gateway sends a request whose prompt and `max_tokens` do not fit
    /// to a car (or central capacity) they fit, when there is one.
    public var contextTokens: Int?

    public init(id: String, decodeTokensPerSecond: Double, prefillTokensPerSecond: Double, contextTokens: Int? = nil) {
        self.id = id
        self.decodeTokensPerSecond = decodeTokensPerSecond
        self.prefillTokensPerSecond = prefillTokensPerSecond
        self.contextTokens = contextTokens
    }

    enum CodingKeys: String, CodingKey {
        case id
        case decodeTokensPerSecond = "decode_tps"
        case prefillTokensPerSecond = "prefill_tps"
        case contextTokens = "context_tokens"
    }
}

/// The car's changing state.
public struct VehicleState: Codable, Sendable, Hashable {
    public var pluggedIn: Bool
    /// State of charge, 0–100.
    public var chargePercent: Int
    public var link: LinkType
    /// Seconds until the car expects to drive off; nil when unknown.
    public var departingInSeconds: Int?
    /// Free inference slots right now.
    public var slotsFree: Int
    /// Measured uplink bandwidth in Mbit/s, when the car knows it.
    public var uplinkMbps: Double?
    /// How many times the engine's prompt cache was lost (a restart, a flush): when it changes, the
    /// gateway forgets which conversations the car holds (issue #14).
    public var cacheResets: Int?

    public init(
        pluggedIn: Bool, chargePercent: Int, link: LinkType, departingInSeconds: Int? = nil, slotsFree: Int,
        uplinkMbps: Double? = nil, cacheResets: Int? = nil
    ) {
        self.cacheResets = cacheResets
        self.pluggedIn = pluggedIn
        self.chargePercent = chargePercent
        self.link = link
        self.departingInSeconds = departingInSeconds
        self.slotsFree = slotsFree
        self.uplinkMbps = uplinkMbps
    }

    enum CodingKeys: String, CodingKey {
        case pluggedIn = "plugged_in"
        case chargePercent = "charge_percent"
        case link
        case departingInSeconds = "departing_in_s"
        case slotsFree = "slots_free"
        case uplinkMbps = "uplink_mbps"
        case cacheResets = "cache_resets"
    }
}

/// What an engine can do when a stream moves to it mid-answer (DESIGN.md, Contracts: continuation).
public enum ContinuationMode: String, Codable, Sendable, Hashable, CaseIterable {
    /// Token-exact: given the seed and `x-fleet-resume-from: N`, it generates tokens N, N+1, … of
    /// the same answer (the synthetic engine).
    case exact
    /// From text: given the delivered text as a final assistant message, it continues it.
    case prefix
    /// It cannot continue another engine's answer.
    case none
}

/// What the car's engine keeps of earlier prompts (told in the hello; issue #14).
public struct PromptCacheCapacity: Codable, Sendable, Hashable {
    /// Prompt sequences the engine keeps at once (llama.cpp server: its slots; llama-cpp-python:
    /// the states its RAM cache holds); 0: it reuses no prefix.
    public var sequences: Int
    /// Tokens of cache, when the engine says (context or KV-cache size).
    public var tokens: Int?

    public init(sequences: Int, tokens: Int? = nil) {
        self.sequences = sequences
        self.tokens = tokens
    }
}

/// One line of the status stream.
public struct StatusMessage: Codable, Sendable, Hashable {
    public enum Kind: String, Codable, Sendable { case hello, state, drain }

    public var v: Int
    public var type: Kind
    // hello
    public var vehicleID: String?
    public var credential: String?
    public var hardware: HardwareClass?
    public var models: [ModelOffer]?
    public var region: String?
    public var slots: Int?
    /// Jobs the car accepts into its own queue while every slot is busy (default 0).
    public var queue: Int?
    public var policy: OwnerPolicy?
    /// What the car's engine can do with a continuation (default `none`).
    public var continuation: ContinuationMode?
    /// What the engine's prompt cache holds (absent: unknown, learned from outcomes).
    public var cache: PromptCacheCapacity?
    /// Whether this tunnel is the car's primary one (default true). A car with tunnels to two
    /// replicas (issue #21) marks the others `false`, so only one replica counts it in its
    /// capacity digest; every tunnel still serves jobs.
    public var primary: Bool?
    /// hello and state (issue #21): the tunnel addresses of the replicas the car's other tunnels
    /// are connected to (as those replicas name themselves, `from`), so a replica moving tunnels
    /// does not send one to a replica the car holds already. Absent: not said (an older agent).
    public var elsewhere: [String]?
    // hello and state
    public var state: VehicleState?
    // drain
    public var reason: String?
    public var secondsLeft: Int?

    public init(type: Kind) {
        self.v = FleetStatus.version
        self.type = type
    }

    /// A hello.
    public static func hello(
        vehicleID: String, credential: String, hardware: HardwareClass, models: [ModelOffer], region: String,
        slots: Int, policy: OwnerPolicy, state: VehicleState
    ) -> Self {
        var m = Self(type: .hello)
        m.vehicleID = vehicleID
        m.credential = credential
        m.hardware = hardware
        m.models = models
        m.region = region
        m.slots = slots
        m.policy = policy
        m.state = state
        return m
    }

    /// A state change, optionally with the rates the car measured for its models.
    public static func state(_ state: VehicleState, models: [ModelOffer]? = nil) -> Self {
        var m = Self(type: .state)
        m.state = state
        m.models = models
        return m
    }

    /// A drain notice.
    public static func drain(reason: String, secondsLeft: Int) -> Self {
        var m = Self(type: .drain)
        m.reason = reason
        m.secondsLeft = secondsLeft
        return m
    }

    enum CodingKeys: String, CodingKey {
        case v, type, hardware, models, region, slots, queue, policy, state, reason, credential, continuation, primary
        case cache, elsewhere
        case vehicleID = "vehicle_id"
        case secondsLeft = "seconds_left"
    }
}
