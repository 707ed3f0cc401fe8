import FleetAgent
import FleetGate
import FleetHTTP2
import FleetProtocol
import FleetScheduler
import FleetTesting
import Foundation
import HTTPTypes
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// One chat chunk event (also `CentralTests`').
func chatChunkEvent(_ id: String, _ delta: String, finish: String? = nil) -> String {
    let reason = finish.map { "\"\($0)\"" } ?? "null"
    return
        #"data: {"id":"\#(id)","object":"chat.completion.chunk","created":1,"model":"fleet-8b","choices":[{"index":0,"delta":{\#(delta)},"finish_reason":\#(reason)}]}"#
        + "\n\n"
}

/// A central endpoint (continuation: prefix, helper-110's) that records each completion's body and answers
/// it after `delay`: a request without a continuation prefix (no assistant message) gets a quick 404 (retried
/// elsewhere, not held against it), a continuation gets ` Z1 Z2` and `stop`.
enum SlowPrefixCentral {
    final class Box: Sendable { let bodies = Mutex<[String]>([]) }

    static func start(delay: TimeAmount, box: Box) async throws -> any Channel {
        try await HTTPServer.bind(
            host: "127.0.0.1", port: 0, group: MultiThreadedEventLoopGroup.singleton,
            responder: Responder(delay: delay, box: box))
    }

    struct Responder: HTTPServerResponder {
        let delay: TimeAmount
        let box: Box
        func stream(_ stream: any HTTPStream, didReceive request: HTTPRequest, connection: HTTPConnectionInfo)
            -> any HTTPStreamDelegate
        {
            Answer(stream: stream, models: request.path?.hasSuffix("/models") == true, delay: self.delay, box: self.box)
        }
    }

    final class Answer: HTTPStreamDelegate, @unchecked Sendable {
        let stream: any HTTPStream
        let models: Bool
        let delay: TimeAmount
        let box: Box
        var body = ByteBuffer()
        init(stream: any HTTPStream, models: Bool, delay: TimeAmount, box: Box) {
            self.stream = stream
            self.models = models
            self.delay = delay
            self.box = box
        }
        func streamDidReceiveData(_ data: ByteBuffer) {
            let count = data.readableBytes
            var data = data
            self.body.writeBuffer(&data)
            self.stream.consume(count)
        }
        func streamDidReceiveEnd(trailers: HTTPFields?) {
            if self.models {
                self.stream.sendResponse(
                    status: .ok, contentType: "application/json",
                    body: ByteBuffer(string: #"{"object":"list","data":[{"id":"fleet-8b","object":"model"}]}"#),
                    headers: [:])
                return
            }
            let text = String(buffer: self.body)
            self.box.bodies.withLock { $0.append(text) }
            guard text.contains("\"assistant\"") else {
                self.stream.sendResponse(
                    status: .notFound, contentType: "application/json",
                    body: ByteBuffer(string: #"{"error":{"message":"no"}}"#), headers: [:])
                return
            }
            let answer =
                chatChunkEvent("c", #""role":"assistant","content":"""#) + chatChunkEvent("c", #""content":" Z1""#)
                + chatChunkEvent("c", #""content":" Z2""#) + chatChunkEvent("c", "", finish: "stop")
                + "data: [DONE]\n\n"
            let stream = self.stream
            stream.eventLoop.scheduleTask(in: self.delay) {
                stream.sendResponse(
                    status: .ok, contentType: "text/event-stream", body: ByteBuffer(string: answer), headers: [:])
            }
        }
        func streamDidClose(error: HTTPStreamError?) {}
    }
}

/// helper-110's two continuation bugs: an answer lost with all its tokens was failed after spending every
/// continuation, and a departure's continuation on an upstream that continues a text repeated tokens.
@Suite("Continuations at the edges", .timeLimit(.minutes(2)))
struct ContinuationEdgeTests {
    /// A stream cut after two tokens (no finish), and the continuation's: one token more and its end.
    static func cutAfterTwoTokens(done: String) -> (cut: String, rest: String) {
        let cut =
            chatChunkEvent("first", #""role":"assistant","content":"""#) + chatChunkEvent("first", #""content":"one""#)
            + chatChunkEvent("first", #""content":" two""#)
        let rest =
            chatChunkEvent("second", #""role":"assistant","content":"""#)
            + chatChunkEvent("second", #""content":" three""#)
            + chatChunkEvent("second", "", finish: "stop") + done
        return (cut, rest)
    }

    @Test("A stream lost after exactly max_tokens tokens, before its finish chunk, ends with length and [DONE]")
    func lostAtMaxTokens() async throws {
        try await CentralTests().withTwoCanned(continuation: .prefix) { _, script, client in
            let (cut, rest) = Self.cutAfterTwoTokens(done: "data: [DONE]\n\n")
            script.answers.withLock { $0 = [(200, cut), (200, rest)] }
            let result = try await client.post("/v1/chat/completions", json: chatBody(stream: true, maxTokens: 2))
                .collect()
            #expect(result.response?.status == .ok)
            #expect(!result.body.contains("\"error\""), "\(result.body)")
            let payloads = try ssePayloads(result.body)
            #expect(payloads.last == SSE.done, "\(result.body)")
            #expect(result.body.contains(#""finish_reason":"length""#), "\(result.body)")
            #expect(!result.body.contains("three"))
        }
    }

    /// The departing car streamed on while a prefix continuation was asked to go on from the text at the
    /// announcement; by its first token the client had more, and its takeover repeated those tokens. The
    /// departing car now stops when such a continuation opens.
    @Test(
        "A departure onto a prefix upstream stops the departing car: the continuation goes on from what the client has")
    func departureOntoPrefixUpstream() async throws {
        let box = SlowPrefixCentral.Box()
        let channel = try await SlowPrefixCentral.start(delay: .milliseconds(1500), box: box)
        defer { channel.close(promise: nil) }
        let baseURL = "http://127.0.0.1:\(channel.localAddress!.port!)/v1"
        try await withFleet(configure: {
            $0.central.endpoints = [.init(region: "eu-central", baseURL: baseURL, continuation: .prefix)]
        }) { fleet in
            try await waitUntil("central models discovered") {
                fleet.gateway.core.central.models().contains("fleet-8b")
            }
            try await fleet.startCar(CarSpec("car-a", slowdown: 4))
            let client = try await RecordingClient.connect(port: fleet.clientPort)
            defer { client.close() }
            let prompt = "departure onto a prefix upstream"
            let stream = try await client.post(
                "/v1/chat/completions", json: chatBody(stream: true, maxTokens: 80, prompt: prompt))
            try await waitUntil(timeout: .seconds(30), "streaming") {
                String(decoding: stream.body, as: UTF8.self).components(separatedBy: "content").count > 4
            }
            let gateway = fleet.gateway.core
            for car in gateway.registry.all() { gateway.tunnels.announceDeparture(car.id, secondsLeft: 1) }
            let result = streamResult(await stream.collect())
            #expect(result.errorCode == nil && result.done)
            // The continuation was opened (asked to continue a prefix) ...
            let continuation = try #require(box.bodies.withLock { $0.last(where: { $0.contains("\"assistant\"") }) })
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(continuation.utf8)) as? [String: Any])
            let prefix = try #require((object["messages"] as? [[String: Any]])?.last?["content"] as? String)
            // ... and continued exactly what the client had.
            #expect(result.text == prefix + " Z1 Z2", "\(result.text.debugDescription)")
            #expect(result.text.hasPrefix(prefix) && prefix.count > 10)
            // Stopped for leaving, not failed: nothing held against the car (helper-113).
            let carA = gateway.registry.all().first { $0.descriptor.vehicleID == "car-a" }
            #expect(carA != nil && carA?.consecutiveFailures == 0, "\(String(describing: carA?.consecutiveFailures))")
        }
    }
}
