import FleetHTTP2
import NIOCore
import Testing

@Suite("DOS heuristics, with an injected clock")
struct DOSHeuristicsTests {
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test("Oversized header lists: the fifth within a minute is ENHANCE_YOUR_CALM; a new minute starts over")
    func oversizedHeaderLists() {
        var dos = DOSHeuristics(configuration: HTTP2Configuration(maxOversizedHeaderListsPerMinute: 4))
        for i in 0..<4 {
            #expect(dos.headerListTooLarge(now: Self.start + .seconds(Int64(i))) == .permitted)
        }
        #expect(dos.headerListTooLarge(now: Self.start + .seconds(10)) == .enhanceYourCalm)
        #expect(dos.headerListTooLarge(now: Self.start + .seconds(71)) == .permitted)
    }

    @Test("Resets, PINGs and SETTINGS are counted per second, each on its own")
    func perSecond() {
        var dos = DOSHeuristics(
            configuration: HTTP2Configuration(maxResetsPerSecond: 2, maxPingsPerSecond: 1, maxSettingsPerSecond: 1))
        #expect(dos.resetReceived(now: Self.start) == .permitted)
        #expect(dos.pingReceived(now: Self.start) == .permitted)
        #expect(dos.resetReceived(now: Self.start + .milliseconds(500)) == .permitted)
        #expect(dos.resetReceived(now: Self.start + .milliseconds(900)) == .enhanceYourCalm)
        #expect(dos.resetReceived(now: Self.start + .milliseconds(1_500)) == .permitted)
        #expect(dos.settingsReceived(now: Self.start) == .permitted)
        #expect(dos.settingsReceived(now: Self.start + .milliseconds(999)) == .enhanceYourCalm)
    }
}
