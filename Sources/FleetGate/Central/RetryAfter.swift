import FleetProtocol
package import Foundation
package import HTTPTypes
package import NIOCore
package import NIOHTTP1

/// How long a busy upstream (429, 503) asks to be left alone, from its `retry-after-ms` (OpenAI's, in
/// milliseconds) or `retry-after` (RFC 9110: delay-seconds or an HTTP-date), in whole seconds, at
/// least 1. Nil when it says nothing readable: the gateway's own 1 s stands.
package enum RetryAfter {
    /// The most a client is told to wait: a busy endpoint's hour-long pause is not the zone's.
    package static let maximumSeconds = 300

    /// The wait until `deadline` as a client is told it: whole seconds rounded up, at least 1 (one already
    /// past is 1: the gateway's probe or back-off is about to end).
    package static func seconds(until deadline: NIODeadline, now: NIODeadline) -> Int {
        let nanoseconds = max(0, (deadline - now).nanoseconds)
        return max(1, Int((nanoseconds + 999_999_999) / 1_000_000_000))
    }

    /// The wait a busy answer's head asks for.
    /// - Parameters:
    ///   - headers: the response's header fields.
    ///   - now: the time an HTTP-date is measured from.
    /// - Returns: whole seconds in 1…``maximumSeconds``, or nil when neither field is readable.
    package static func seconds(in headers: HTTPHeaders, now: Date = Date()) -> Int? {
        if let value = headers.first(name: "retry-after-ms")?.trimmed,
            value.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: ".") }),
            let milliseconds = Double(value), milliseconds.isFinite
        {
            return Self.bounded((milliseconds / 1_000).rounded(.up))
        }
        guard let value = headers.first(name: "retry-after")?.trimmed, !value.isEmpty else { return nil }
        if value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Many digits: a long time, not a parse failure.
            return Self.bounded(Double(value) ?? Double(Self.maximumSeconds))
        }
        guard let date = Self.httpDate.date(from: value) else { return nil }
        return Self.bounded(date.timeIntervalSince(now).rounded(.up))
    }

    /// The wait a busy answer's head asks for; nil when the answer is not busy (``APIError/isBusy(status:)``)
    /// or says nothing readable.
    package static func seconds(ofBusy head: HTTPResponseHead, now: Date = Date()) -> Int? {
        guard APIError.isBusy(status: Int(head.status.code)) else { return nil }
        return Self.seconds(in: head.headers, now: now)
    }

    /// The same for an HTTP/2 answer (a car's job stream, another replica's forwarded stream).
    package static func seconds(ofBusy response: HTTPResponse, now: Date = Date()) -> Int? {
        guard APIError.isBusy(status: response.status.code) else { return nil }
        var headers = HTTPHeaders()
        for name in [HTTPField.Name.retryAfterMilliseconds, .retryAfter] {
            if let value = response.headerFields[name] { headers.add(name: name.canonicalName, value: value) }
        }
        return Self.seconds(in: headers, now: now)
    }

    private static func bounded(_ seconds: Double) -> Int {
        Int(min(max(seconds, 1), Double(Self.maximumSeconds)))
    }

    /// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form RFC 9110 requires senders to use.
    /// Read only on a busy answer; the formatter is not touched anywhere else.
    private static let httpDate: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter
    }()
}

extension String {
    fileprivate var trimmed: String { self.trimmingCharacters(in: .whitespaces) }
}

extension HTTPField.Name {
    /// OpenAI's `retry-after-ms`.
    fileprivate static let retryAfterMilliseconds = HTTPField.Name("retry-after-ms")!
}
