import Testing

@testable import FleetGate

@Suite("Authorization: Bearer")
struct BearerTokenTests {
    @Test("The scheme is case-insensitive; another scheme, no token or no space is none")
    func scheme() {
        for header in ["Bearer sk-1", "bearer sk-1", "BEARER sk-1", "bEaReR sk-1"] {
            #expect(header.bearerToken.map { Array($0) } == Array("sk-1".utf8), "\(header)")
        }
        for header in ["Basic sk-1", "Bearer", "Bearer ", "Bearersk-1", "Bearer\tsk-1", "Bearxr sk-1", ""] {
            #expect(header.bearerToken == nil, "\(header)")
        }
    }
}
