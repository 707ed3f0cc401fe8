import FleetProtocol
import NIOCore
import Testing

@Suite("RuntimeRejection: a car's rejection in the gateway's shape")
struct RuntimeRejectionTests {
    static func rebuilt(_ json: String) throws -> APIErrorBody {
        let body = RuntimeRejection.body(from: ByteBuffer(string: json))
        return try JSON.decode(APIErrorBody.self, from: Array(body.readableBytesView))
    }

    @Test("An honest runtime's rejection keeps its code, field and words, marked as the runtime's")
    func honest() throws {
        let body = try Self.rebuilt(
            #"{"error":{"message":"This model's maximum context length is 2048 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
        )
        #expect(body.error.code == "context_length_exceeded" && body.error.param == "messages")
        #expect(
            body.error.message
                == "The model runtime serving this request rejected it (context_length_exceeded). The runtime said: This model's maximum context length is 2048 tokens."
        )
    }

    @Test("A car's markup, control characters, odd codes and fields, and length are not passed on")
    func hostile() throws {
        let long = String(repeating: "x", count: 500)
        let body = try Self.rebuilt(
            #"{"error":{"message":"<b>hi</b>\u0007\u200b\n\n there \#(long)","code":"Bad Code","param":"a b","type":"z"},"extra":1}"#
        )
        #expect(body.error.code == "rejected" && body.error.param == nil && body.error.type == "invalid_request_error")
        let said = try #require(body.error.message.split(separator: ": ", maxSplits: 1).last)
        #expect(said.hasPrefix("bhi/b there xxx"), "\(said)")
        #expect(said.count == RuntimeRejection.maxMessageCharacters)
        // Not JSON at all: the gateway's words alone.
        #expect(
            try Self.rebuilt("not json").error.message
                == "The model runtime serving this request rejected it (rejected).")
    }
}
