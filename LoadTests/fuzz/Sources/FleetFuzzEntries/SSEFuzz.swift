import FleetGate
import FleetProtocol
import Foundation
import NIOCore

/// Target `sse`: the input is what an upstream (a car or central capacity) sends on one attempt.
/// It is fed to an ``SSERelay`` driven as the dispatcher drives it — once whole and once in random
/// pieces — under four client configurations (streamed chat with usage; streamed legacy
/// completions with `max_tokens` and small bounds; `stream: false` with a small aggregate bound;
/// the Responses API).
///
/// Invariants beyond "no crash":
/// - how the bytes are cut does not change what the relay decides or what the client receives;
/// - a streamed client receives only `data: <JSON chunk>` events (Responses: `event:` + `data:`),
///   whose JSON a second parser (Foundation's) accepts, one `id` throughout, `[DONE]` at most once
///   and last; a `stream: false` client receives one JSON object;
/// - the client never receives more content tokens than its `max_tokens`.
enum SSEFuzz {
    static let configurations: [SSERelay.Configuration] = [
        .init(streaming: true, includeUsage: true, chat: true, maxOutputTokens: nil, fallbackID: "chatcmpl-fuzz"),
        .init(
            streaming: true, includeUsage: false, chat: false, maxOutputTokens: 4, maxEventBytes: 512,
            maxEventsPerAttempt: 16, fallbackID: "cmpl-fuzz"),
        .init(
            streaming: false, includeUsage: false, chat: true, maxOutputTokens: nil, maxAggregateBytes: 256,
            fallbackID: "chatcmpl-fuzz"),
        .init(
            streaming: true, includeUsage: false, chat: true, maxOutputTokens: 8, fallbackID: "unused",
            responses: ResponseObject(id: "resp_fuzz", createdAt: 1_700_000_000, model: "fleet-8b")),
    ]

    /// What the client saw, and the relay's decisions.
    struct Run: Equatable {
        var kinds: [SSERelay.Kind] = []
        var client = ByteBuffer()
        var delivered = 0
        var ended = false
        var failed = false
    }

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        let pieces = Splits.pieces(of: bytes)
        for (number, configuration) in Self.configurations.enumerated() {
            let whole = Self.drive(configuration, [bytes[...]])
            let split = Self.drive(configuration, pieces)
            try check(
                whole == split,
                "configuration \(number): cutting the bytes changed the outcome: whole \(whole.kinds), "
                    + "split \(split.kinds)")
            // The dispatcher's pass-through run (`forwardTokens`), whole and cut: the item path's outcome.
            for (name, input) in [("whole", [bytes[...]]), ("split", pieces)] {
                let passed = Self.drive(configuration, input, passThrough: true)
                try check(
                    passed == whole,
                    "configuration \(number): the pass-through run (\(name)) changed the outcome: "
                        + "\(passed.kinds), item path \(whole.kinds)")
            }
            try Self.checkClient(whole, configuration, number)
        }
    }

    /// Drives one attempt as `Dispatcher.upstream(_:didReceive:)` and `handle(_:from:)` do.
    static func drive(
        _ configuration: SSERelay.Configuration, _ pieces: [ArraySlice<UInt8>], passThrough: Bool = false
    ) -> Run {
        var relay = SSERelay(configuration: configuration)
        var run = Run()
        var committed = false
        relay.open(attempt: 1)
        feed: for piece in pieces {
            relay.append(ByteBuffer(bytes: piece), from: 1)
            while true {
                // As `Dispatcher.received`: plain tokens of the committed attempt pass through first.
                if passThrough && committed {
                    let count = relay.forwardTokens(from: 1, into: &run.client)
                    run.kinds += Array(repeating: .output, count: count)
                }
                guard let item = relay.next(from: 1) else { break }
                run.kinds.append(item.kind)
                switch item.kind {
                case .preamble:
                    if !committed { relay.hold(item, from: 1) }
                case .output:
                    if relay.wouldExceedLimits(item) {
                        relay.finishOverLimit(into: &run.client)
                        run.ended = true
                        break feed
                    }
                    if committed {
                        relay.deliver(item, from: 1, into: &run.client)
                    } else {
                        committed = true
                        relay.commit(1, first: item, into: &run.client)
                    }
                case .usage:
                    break
                case .done:
                    run.ended = true
                    break feed
                case .upstreamError, .malformed:
                    // Before the first token the dispatcher retries elsewhere; after it, the client
                    // gets the error event (no other upstream here to fail over to).
                    // (`stream: false` is answered with an error response instead, not written here.)
                    if committed && configuration.streaming {
                        run.client.writeImmutableBuffer(relay.clientErrorEvent(.upstreamFailed("fuzz")))
                    }
                    run.failed = true
                    break feed
                case .overLimit:
                    relay.finishOverLimit(into: &run.client)
                    run.ended = true
                    break feed
                }
            }
        }
        if run.ended {
            if configuration.streaming {
                relay.finishStream(into: &run.client)
            } else {
                run.client = relay.responseBody(model: "fleet-8b")
            }
        }
        run.delivered = relay.deliveredTokens
        return run
    }

    static func checkClient(_ run: Run, _ configuration: SSERelay.Configuration, _ number: Int) throws(FuzzFinding) {
        let label = "configuration \(number)"
        if let limit = configuration.maxOutputTokens {
            try check(run.delivered <= limit, "\(label): \(run.delivered) tokens delivered past max_tokens \(limit)")
        }
        guard configuration.streaming else {
            guard run.ended else { return try check(run.client.readableBytes == 0, "\(label): output before the end") }
            try check(
                Self.isJSONObject(Array(run.client.readableBytesView)), "\(label): the answer is not a JSON object")
            return
        }
        let text = Array(run.client.readableBytesView)
        let events = Self.events(text)
        try check(text.isEmpty || text.suffix(2) == [0x0A, 0x0A], "\(label): the client's last event is unterminated")
        var id: String?
        for (index, event) in events.enumerated() {
            var lines = event.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            if configuration.responses != nil {
                try check(
                    lines.count == 2 && lines[0].starts(with: Array("event: ".utf8)),
                    "\(label): a Responses event without its event line")
                lines.removeFirst()
            }
            try check(lines.count == 1, "\(label): an event of \(lines.count) lines")
            let line = Array(lines[0])
            try check(line.starts(with: Array("data: ".utf8)), "\(label): an event that is not data")
            let payload = Array(line.dropFirst(6))
            if payload == Array("[DONE]".utf8) {
                try check(index == events.count - 1, "\(label): [DONE] before the last event")
                try check(run.ended, "\(label): [DONE] after a failed attempt")
                continue
            }
            guard let object = Self.jsonObject(payload) else {
                throw FuzzFinding(
                    "\(label): event \(index) is not a JSON object: \(String(decoding: payload, as: UTF8.self))")
            }
            if configuration.responses == nil, object["error"] == nil {
                let eventID = object["id"] as? String
                try check(eventID != nil, "\(label): a chunk without an id")
                if id == nil { id = eventID }
                try check(id == eventID, "\(label): the chunk id changed from \(id ?? "-") to \(eventID ?? "-")")
            }
        }
    }

    /// The blocks between blank lines (JSON written by the relay never holds a raw newline).
    static func events(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index + 1 < bytes.count {
            if bytes[index] == 0x0A && bytes[index + 1] == 0x0A {
                out.append(bytes[start..<index])
                index += 2
                start = index
            } else {
                index += 1
            }
        }
        if start < bytes.count { out.append(bytes[start...]) }
        return out
    }

    static func jsonObject(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]
    }

    static func isJSONObject(_ bytes: [UInt8]) -> Bool { Self.jsonObject(bytes) != nil }
}
