import FleetProtocol
import Testing

@testable import FleetAgent

/// What a runtime's error body says, whatever its runtime: the message must survive a `code` of
/// another type (llama.cpp and vLLM send the HTTP status there).
@Suite("Runtime error bodies")
struct RuntimeErrorMessageTests {
    @Test("OpenAI's string code, llama.cpp's number code, no code: the message is kept")
    func shapes() throws {
        let openAI =
            #"{"error":{"message":"too long","type":"invalid_request_error","code":"context_length_exceeded","param":"messages"}}"#
        let llama =
            #"{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#
        let bare = #"{"error":{"message":"no"}}"#
        let a = try JSON.decode(ErrorMessage.self, from: Array(openAI.utf8)).error
        #expect(a.message == "too long" && a.code == "context_length_exceeded" && a.param == "messages")
        let b = try JSON.decode(ErrorMessage.self, from: Array(llama.utf8)).error
        #expect(b.message == "the request exceeds the available context size" && b.code == nil)
        let c = try JSON.decode(ErrorMessage.self, from: Array(bare.utf8)).error
        #expect(c.message == "no" && c.code == nil && c.param == nil)
    }
}
