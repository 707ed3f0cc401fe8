import FleetProtocol
import Testing

@Suite("W3C traceparent", .timeLimit(.minutes(1)))
struct TraceParentTests {
    static let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    @Test("A valid header parses and prints back; a child keeps the trace and flags with a new span")
    func roundTrip() throws {
        let parent = try #require(TraceParent(Self.valid))
        #expect(parent.traceID == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(parent.parentID == "00f067aa0ba902b7")
        #expect(parent.flags == 1)
        #expect(parent.description == Self.valid)
        var random = SystemRandomNumberGenerator()
        let child = parent.child(using: &random)
        #expect(child.traceID == parent.traceID && child.flags == parent.flags)
        #expect(child.parentID != parent.parentID && child.parentID.count == 16)
        #expect(TraceParent(child.description) == child)
        let started = TraceParent.start(using: &random)
        #expect(TraceParent(started.description) == started)
    }

    @Test(
        "Malformed headers are refused",
        arguments: [
            "", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ])
    func refused(_ value: String) {
        #expect(TraceParent(value) == nil)
    }

    @Test("A future version is read by its first four fields")
    func futureVersion() {
        #expect(
            TraceParent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")?.flags == 1)
    }
}
