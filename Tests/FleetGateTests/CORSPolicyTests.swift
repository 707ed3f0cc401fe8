import HTTPTypes
import Testing

@testable import FleetGate

@Suite("CORS policy")
struct CORSPolicyTests {
    @Test("Origins match without case; * allows any; none configured is off")
    func origins() {
        let policy = CORSPolicy(allowedOrigins: ["https://App.example.com", "http://127.0.0.1:3000"])
        #expect(policy.isEnabled)
        #expect(policy.allows("https://app.example.com"))
        #expect(policy.allows("http://127.0.0.1:3000"))
        #expect(!policy.allows("http://127.0.0.1:3001"))
        #expect(!policy.allows("https://app.example.com.evil"))
        #expect(!policy.allows("null"))
        #expect(CORSPolicy(allowedOrigins: ["*"]).allows("https://anything.example"))
        #expect(!CORSPolicy(allowedOrigins: []).isEnabled)
    }

    @Test("A header list is echoed only when it is field names")
    func requestedHeaders() {
        let policy = CORSPolicy(allowedOrigins: ["*"])
        let good = policy.preflightFields(origin: "https://a.example", requestedHeaders: "authorization, content-type")
        #expect(good[.accessControlAllowHeaders] == "authorization, content-type")
        #expect(good[.accessControlAllowOrigin] == "https://a.example")
        let bad = policy.preflightFields(origin: "https://a.example", requestedHeaders: "x\r\nset-cookie: a")
        #expect(bad[.accessControlAllowHeaders] == nil)
        let long = policy.preflightFields(
            origin: "https://a.example", requestedHeaders: String(repeating: "a,", count: 1_500))
        #expect(long[.accessControlAllowHeaders] == nil)
    }

    @Test("Configured origins are scheme://host[:port] or *")
    func validity() {
        for good in ["*", "https://app.example.com", "http://127.0.0.1:8080", "http://[::1]:3000", "app://x"] {
            #expect(CORSPolicy.isValidOrigin(good), "\(good)")
        }
        for bad in [
            "", "app.example.com", "https://app.example.com/", "https://a.example/path", "https://", "*.example.com",
        ] {
            #expect(!CORSPolicy.isValidOrigin(bad), "\(bad)")
        }
    }
}
