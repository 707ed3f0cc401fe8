import HTTPTypes
import Testing

@testable import FleetGate

@Suite("Client API routes and the fields every answer carries")
struct ClientAPITests {
    @Test(
        "A path names its API, with or without a query",
        arguments: [
            ("/v1/chat/completions", ClientAPI.chatCompletions), ("/v1/chat/completions?x=1", .chatCompletions),
            ("/v1/completions", .completions), ("/v1/responses?stream=true&a=%3F", .responses),
            ("/v1/chat/completion", nil), ("/v1/chat/completions/", nil), ("/v1/chat/completionsx?y", nil),
            ("?/v1/completions", nil), ("", nil), ("/v1/r\u{e9}sponses", nil),
        ] as [(String, ClientAPI?)])
    func route(path: String, api: ClientAPI?) {
        #expect(ClientAPI(path: path) == api)
        // A bridged or sliced string, whose bytes may not be contiguous, reads the same.
        #expect(ClientAPI(path: String(Substring("#" + path).dropFirst())) == api)
        // The responder's route (metrics label, 404) agrees: `?/v1/completions` is no API there either.
        #expect(ClientAPI(rawValue: APIResponder.route(of: path)) == api)
    }

    @Test("Every API is found by its own path; its ordinal is its place among all")
    func everyAPI() {
        for (index, api) in ClientAPI.allCases.enumerated() {
            #expect(ClientAPI(path: api.rawValue) == api)
            #expect(ClientAPI(path: api.rawValue + "?q") == api)
            #expect(api.ordinal == index)
        }
    }

    @Test("The request id of an answer is kept out of the HPACK dynamic table, and echoed when well formed")
    func requestID() {
        var request = HTTPRequest(method: .post, scheme: "http", authority: "gw", path: "/v1/models")
        request.headerFields[.fleetRequestID] = "client-id-7"
        let echoed = APIResponder.requestIDHeaders(request)
        #expect(echoed[.fleetRequestID] == "client-id-7")
        #expect(echoed.map(\.indexingStrategy) == [.disallow])
        let generated = APIResponder.requestIDHeaders(
            HTTPRequest(method: .get, scheme: "http", authority: "gw", path: "/"))
        #expect(generated[.fleetRequestID]?.count == 36)
        #expect(generated.map(\.indexingStrategy) == [.disallow])
        #expect(HTTPField.perMessage(.fleetSeed, "42").indexingStrategy == .disallow)
    }
}
