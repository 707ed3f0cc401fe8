import FleetProtocol
import Foundation
import NIOCore
import Testing

@Suite("An error's body written directly equals JSONEncoder's")
struct APIErrorJSONTests {
    static let messages: [String] = [
        "The gateway is at capacity; retry shortly.",
        "Every car and central endpoint in privacy zone 'eu' that serves this model is busy. Retry after 1 s.",
        #"a "quoted" \ back\slash / slash"#, "line\nbreak\r\ttab", "caf\u{e9} \u{1F697} \u{2028}", "",
        String((0..<32).map { Character(Unicode.Scalar(UInt8($0))) }) + "\u{7F}",
    ]

    static let errors: [APIError] =
        messages.flatMap { message in
            [
                APIError.overloaded(message, retryAfter: 3),
                APIError.invalidRequest(message, param: "messages[0].\"content\""),
            ]
        } + [.invalidAPIKey, .notFound, .modelNotFound("fleet-8b"), .bodyTooLarge(limit: 1_048_576)]

    @Test(
        "Decodes to the same object; the same bytes when only quotes, backslashes and \\n \\r \\t are escaped",
        arguments: errors)
    func sameBody(error: APIError) throws {
        let direct = error.jsonBody()
        let encoded = JSON.buffer(error.body)
        let a = try JSONSerialization.jsonObject(with: Data(direct.readableBytesView)) as? NSDictionary
        let b = try JSONSerialization.jsonObject(with: Data(encoded.readableBytesView)) as? NSDictionary
        #expect(a != nil && a == b)
        let special = error.message.unicodeScalars.contains { $0.value < 0x20 && !"\n\r\t".unicodeScalars.contains($0) }
        if !special { #expect(String(buffer: direct) == String(buffer: encoded)) }
    }
}
