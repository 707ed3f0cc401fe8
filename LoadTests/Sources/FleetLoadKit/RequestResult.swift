/// What one client request saw, measured on the client (times in microseconds from its send).
package struct RequestResult: Sendable, Codable, Hashable {
    /// How the request ended.
    package enum Outcome: String, Sendable, Codable {
        /// The whole answer arrived (`[DONE]` or the full JSON body) and matched the reference text.
        case ok
        /// The client reset the stream as planned (a cancellation mid-stream).
        case cancelled
        /// An HTTP error, an SSE error event, a reset, a lost connection or a timeout.
        case failed
    }

    /// What was wrong with the text, compared token by token with the synthetic reference.
    package enum TextError: String, Sendable, Codable {
        /// A token the reference has was missing (the text skipped ahead, or ended short).
        case lost
        /// A token arrived again.
        case repeated
        /// Something else arrived.
        case corrupt
    }

    package var index: Int
    /// Seconds after the start of load that the request was sent.
    package var sentAt: Double
    /// Microseconds between the planned and the real send (the harness's own lag).
    package var lagMicros: Int
    package var outcome: Outcome = .failed
    /// The OpenAI error code, `http_NNN`, `reset_CODE`, `connection_lost` or `timeout`.
    package var error: String?
    package var status = 0
    package var ttftMicros: Int?
    package var totalMicros: Int?
    /// Gaps between content events after the first, microseconds.
    package var gapsMicros: [Int32] = []
    package var tokens = 0
    package var textError: TextError?
    package var route: String?
    package var zone: String?
    package var region: String?
    /// `x-fleet-origin-region`: where the gateway placed the client (checked against its country by the probe).
    package var originRegion: String?
    package var attempts: Int?
    package var migrations: Int?

    package init(index: Int, sentAt: Double, lagMicros: Int) {
        self.index = index
        self.sentAt = sentAt
        self.lagMicros = lagMicros
    }
}
