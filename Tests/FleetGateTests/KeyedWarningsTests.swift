import Testing

@testable import FleetGate

@Suite("Takeovers of a car's open tunnel")
struct KeyedWarningsTests {
    /// helper-65: two agents with one vehicle id replaced each other's tunnel 19 times in 20 s, seen
    /// only as info lines; a warning a minute per car says so without flooding the log.
    @Test("One warning a minute per vehicle id; other ids are warned about on their own")
    func oneAMinute() {
        let warnings = KeyedWarnings()
        #expect(warnings.shouldWarn("VIN1", now: 100))
        #expect(!warnings.shouldWarn("VIN1", now: 101))
        #expect(!warnings.shouldWarn("VIN1", now: 159.9))
        #expect(warnings.shouldWarn("VIN2", now: 101))
        #expect(warnings.shouldWarn("VIN1", now: 160))
    }
}
