import FleetProtocol
import HTTPTypes

/// What the gateway's headers tell a job (`x-fleet-seed`, `x-fleet-resume-from`, `x-request-id`,
/// `x-fleet-zone`, `x-fleet-continuation`, `x-fleet-stream`), read in one pass over the fields.
/// Six `HTTPFields` subscripts by name cost ~3,500 instructions each (a scan and a join per name:
/// ~4 % of the agent's work per stream, issue #19); this gives what they give — a repeated field's
/// values joined with ", " — which `JobRequestHeadersTests` checks.
struct JobRequestHeaders: Equatable {
    var seed: String?
    var resumeFrom: String?
    var requestID: String?
    var zone: String?
    var continuation: String?
    var streamMode: String?

    init(
        seed: String? = nil, resumeFrom: String? = nil, requestID: String? = nil, zone: String? = nil,
        continuation: String? = nil, streamMode: String? = nil
    ) {
        self.seed = seed
        self.resumeFrom = resumeFrom
        self.requestID = requestID
        self.zone = zone
        self.continuation = continuation
        self.streamMode = streamMode
    }

    init(_ fields: HTTPFields) {
        func add(_ value: String, to slot: inout String?) {
            slot = slot.map { $0 + ", " + value } ?? value
        }
        for field in fields {
            // Names are kept lower-cased (`canonicalName`), as the constants are.
            switch field.name.canonicalName {
            case FleetHeader.seed: add(field.value, to: &self.seed)
            case FleetHeader.resumeFrom: add(field.value, to: &self.resumeFrom)
            case FleetHeader.requestID: add(field.value, to: &self.requestID)
            case FleetHeader.zone: add(field.value, to: &self.zone)
            case FleetHeader.continuation: add(field.value, to: &self.continuation)
            case FleetHeader.streamMode: add(field.value, to: &self.streamMode)
            default: continue
            }
        }
    }
}
