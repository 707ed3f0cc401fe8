@testable import FleetAgent
import FleetProtocol
import HTTPTypes
import Testing

/// The gateway's headers read in one pass, against `HTTPFields`' subscript by name (no sockets).
@Suite("Job request headers")
struct JobRequestHeadersTests {
    private func bySubscript(_ fields: HTTPFields) -> JobRequestHeaders {
        func value(_ name: String) -> String? { fields[HTTPField.Name(name)!] }
        return JobRequestHeaders(
            seed: value(FleetHeader.seed), resumeFrom: value(FleetHeader.resumeFrom),
            requestID: value(FleetHeader.requestID), zone: value(FleetHeader.zone),
            continuation: value(FleetHeader.continuation), streamMode: value(FleetHeader.streamMode))
    }

    @Test("One pass reads what the subscripts read: any order, any case, repeated fields joined, others ignored")
    func matchesSubscripts() {
        let names = [
            FleetHeader.seed, FleetHeader.resumeFrom, FleetHeader.requestID, FleetHeader.zone, FleetHeader.continuation,
            FleetHeader.streamMode, "X-Fleet-Seed", "X-Request-ID", "x-fleet-zone-extra", "content-type", "x-fleet",
            "traceparent",
        ]
        let values = ["1", "42", "prefix", "sse-usage", "eu-central", "", "req-7", "a, b"]
        var random = SplitMix64(seed: 21)
        for round in 0..<3_000 {
            var fields = HTTPFields()
            for _ in 0..<Int(random.next() % 9) {
                let name = names[Int(random.next() % UInt64(names.count))]
                fields.append(HTTPField(name: HTTPField.Name(name)!, value: values[Int(random.next() % UInt64(values.count))]))
            }
            #expect(JobRequestHeaders(fields) == self.bySubscript(fields), "round \(round): \(fields)")
        }
    }

    @Test("A typical gateway request")
    func typical() {
        let fields: HTTPFields = [
            .contentType: "application/json", HTTPField.Name(FleetHeader.requestID)!: "r1",
            HTTPField.Name(FleetHeader.streamMode)!: "sse-usage", HTTPField.Name(FleetHeader.seed)!: "9",
        ]
        let headers = JobRequestHeaders(fields)
        #expect(headers == JobRequestHeaders(seed: "9", requestID: "r1", streamMode: "sse-usage"))
    }
}
