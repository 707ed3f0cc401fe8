import FleetGate
import Foundation
import HTTPTypes
import NIOHTTP1
import Testing

@Suite("RetryAfter")
struct RetryAfterTests {
    func seconds(_ fields: [(String, String)], now: Date = Date(timeIntervalSince1970: 784_111_777)) -> Int? {
        RetryAfter.seconds(in: HTTPHeaders(fields), now: now)
    }

    @Test("delay-seconds, OpenAI's retry-after-ms (first), and an HTTP-date, as whole seconds from 1 to 300")
    func forms() {
        #expect(self.seconds([("retry-after", "7")]) == 7)
        #expect(self.seconds([("Retry-After", " 12 ")]) == 12)
        #expect(self.seconds([("retry-after", "0")]) == 1)
        #expect(self.seconds([("retry-after", "86400")]) == RetryAfter.maximumSeconds)
        #expect(self.seconds([("retry-after", "99999999999999999999999")]) == RetryAfter.maximumSeconds)
        #expect(self.seconds([("retry-after-ms", "2500"), ("retry-after", "9")]) == 3)
        #expect(self.seconds([("retry-after-ms", "20")]) == 1)
        // Digits only: Swift's Double would read a hex float ("0x10000": 66 s).
        #expect(self.seconds([("retry-after-ms", "0x10000")]) == nil)
        #expect(self.seconds([("retry-after-ms", "0x10000"), ("retry-after", "3")]) == 3)
        // RFC 9110's example date; `now` is 08:49:37 that day.
        #expect(self.seconds([("retry-after", "Sun, 06 Nov 1994 08:49:57 GMT")]) == 20)
        #expect(self.seconds([("retry-after", "Sun, 06 Nov 1994 08:40:00 GMT")]) == 1)  // past
    }

    @Test("Nothing readable is nil: the gateway's own 1 s stands")
    func unreadable() {
        #expect(self.seconds([]) == nil)
        #expect(self.seconds([("retry-after", "")]) == nil)
        #expect(self.seconds([("retry-after", "-3")]) == nil)
        #expect(self.seconds([("retry-after", "soon")]) == nil)
        #expect(self.seconds([("retry-after", "1.5")]) == nil)
        #expect(self.seconds([("retry-after-ms", "nan"), ("retry-after", "4")]) == 4)
        #expect(self.seconds([("retry-after-ms", "-1")]) == nil)
    }

    @Test("An HTTP/2 answer's busy head (a replica's, a car's) reads the same; not busy, nothing")
    func http2() {
        var busy = HTTPResponse(status: .serviceUnavailable)
        busy.headerFields[HTTPField.Name("retry-after")!] = "4"
        #expect(RetryAfter.seconds(ofBusy: busy) == 4)
        busy.headerFields[HTTPField.Name("retry-after-ms")!] = "1500"
        #expect(RetryAfter.seconds(ofBusy: busy) == 2)
        var ok = HTTPResponse(status: .ok)
        ok.headerFields[HTTPField.Name("retry-after")!] = "4"
        #expect(RetryAfter.seconds(ofBusy: ok) == nil)
        #expect(RetryAfter.seconds(ofBusy: HTTPResponse(status: .tooManyRequests)) == nil)
    }
}
