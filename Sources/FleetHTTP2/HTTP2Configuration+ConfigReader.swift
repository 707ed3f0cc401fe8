public import Configuration
public import FleetConfiguration
import NIOCore

extension HTTP2Configuration {
    /// Reads the settings and limits of one HTTP/2 connection.
    ///
    /// The caller scopes the reader (`limits.clientHTTP2`, `limits.tunnelHTTP2`, `tunnelHTTP2`). Durations
    /// are in seconds; `0` turns an optional timer off.
    ///
    /// ## Configuration keys:
    /// - `maxConcurrentStreams` (int, 1…2³¹−1): SETTINGS_MAX_CONCURRENT_STREAMS announced.
    /// - `initialStreamWindowSize` (int, 1…2³¹−1): SETTINGS_INITIAL_WINDOW_SIZE announced.
    /// - `connectionWindowSize` (int, 65535…2³¹−1): the connection-level receive window.
    /// - `maxFrameSize` (int, 16384…16777215): SETTINGS_MAX_FRAME_SIZE announced.
    /// - `maxHeaderListSize` (int, 1024…16 MiB): SETTINGS_MAX_HEADER_LIST_SIZE announced and enforced.
    /// - `outboundHighWatermark`, `outboundLowWatermark` (int, low < high): per-stream write buffering.
    /// - `idleTimeoutSeconds` (double, 0 = never): close a connection without streams after this long.
    /// - `handshakeTimeoutSeconds` (double): the peer's preface and SETTINGS must arrive in this time.
    /// - `stallTimeoutSeconds` (double, 0 = never): close a connection whose writes make no progress.
    /// - `gracefulShutdownTimeoutSeconds` (double): after GOAWAY, how long streams may take.
    /// - `keepaliveIntervalSeconds` (double, 0 = off), `keepaliveTimeoutSeconds` (double): keepalive PINGs.
    /// - `maxResetsPerSecond`, `maxContinuationFrames`, `maxPingsPerSecond`, `maxSettingsPerSecond`,
    ///   `maxEmptyDataFramesPerSecond`, `maxWindowUpdatesPerSecond`, `maxPrioritiesPerSecond` (int): abuse limits.
    /// - `maxOversizedHeaderListsPerMinute` (int): header lists over the limit before GOAWAY ENHANCE_YOUR_CALM.
    /// - `http1HeaderTimeoutSeconds`, `http1KeepAliveTimeoutSeconds` (double): HTTP/1.1 head and idle keep-alive limits.
    ///
    /// - Throws: ``ConfigurationError`` naming the key and value.
    public init(config: ConfigReader) throws {
        self.init(
            maxConcurrentStreams: try config.int("maxConcurrentStreams", in: 1...Int(Int32.max)),
            initialStreamWindowSize: try config.int("initialStreamWindowSize", in: 1...Int(Int32.max)),
            connectionWindowSize: try config.int("connectionWindowSize", in: 65_535...Int(Int32.max)),
            maxFrameSize: try config.int("maxFrameSize", in: 16_384...16_777_215),
            maxHeaderListSize: try config.int("maxHeaderListSize", in: 1024...(16 << 20)),
            maxOversizedHeaderListsPerMinute: try config.int("maxOversizedHeaderListsPerMinute", in: 0...1_000_000),
            outboundHighWatermark: try config.int("outboundHighWatermark", in: 1...(1 << 30)),
            outboundLowWatermark: try config.int("outboundLowWatermark", in: 0...(1 << 30)),
            idleTimeout: try config.optionalSeconds("idleTimeoutSeconds"),
            handshakeTimeout: try config.seconds("handshakeTimeoutSeconds"),
            http1HeaderTimeout: try config.seconds("http1HeaderTimeoutSeconds"),
            http1KeepAliveTimeout: try config.seconds("http1KeepAliveTimeoutSeconds"),
            stallTimeout: try config.optionalSeconds("stallTimeoutSeconds"),
            gracefulShutdownTimeout: try config.seconds("gracefulShutdownTimeoutSeconds", minimum: 0),
            keepaliveInterval: try config.optionalSeconds("keepaliveIntervalSeconds"),
            keepaliveTimeout: try config.seconds("keepaliveTimeoutSeconds"),
            maxResetsPerSecond: try config.int("maxResetsPerSecond", in: 1...1_000_000),
            maxContinuationFrames: try config.int("maxContinuationFrames", in: 0...1_000_000),
            maxPingsPerSecond: try config.int("maxPingsPerSecond", in: 1...1_000_000),
            maxSettingsPerSecond: try config.int("maxSettingsPerSecond", in: 1...1_000_000),
            maxEmptyDataFramesPerSecond: try config.int("maxEmptyDataFramesPerSecond", in: 1...1_000_000),
            maxWindowUpdatesPerSecond: try config.int("maxWindowUpdatesPerSecond", in: 1...1_000_000),
            maxPrioritiesPerSecond: try config.int("maxPrioritiesPerSecond", in: 1...1_000_000)
        )
        guard self.outboundLowWatermark < self.outboundHighWatermark else {
            var error = ConfigurationError(
                .invalidValue, key: "outboundLowWatermark", value: "\(self.outboundLowWatermark)",
                "must be below outboundHighWatermark (\(self.outboundHighWatermark))")
            error.relatedKeys = ["outboundHighWatermark"]
            throw error
        }
    }

    /// The keys ``init(config:)`` reads, with `defaults`' values as their defaults.
    public static func configKeys(defaults d: Self = .defaults) -> ConfigSchema {
        func seconds(_ t: TimeAmount?) -> Double { Double(t?.nanoseconds ?? 0) / 1e9 }
        return ConfigSchema([
            .int(
                "maxConcurrentStreams", d.maxConcurrentStreams,
                "SETTINGS_MAX_CONCURRENT_STREAMS announced: streams the peer may open at once."),
            .int(
                "initialStreamWindowSize", d.initialStreamWindowSize,
                "SETTINGS_INITIAL_WINDOW_SIZE announced: per-stream receive window, bytes."),
            .int("connectionWindowSize", d.connectionWindowSize, "Connection-level receive window, bytes."),
            .int("maxFrameSize", d.maxFrameSize, "SETTINGS_MAX_FRAME_SIZE announced (16384–16777215)."),
            .int(
                "maxHeaderListSize", d.maxHeaderListSize,
                "SETTINGS_MAX_HEADER_LIST_SIZE announced and enforced: decoding stops and the stream is reset."),
            .int(
                "maxOversizedHeaderListsPerMinute", d.maxOversizedHeaderListsPerMinute,
                "Header lists over the limit a peer may send per minute before GOAWAY ENHANCE_YOUR_CALM."),
            .int(
                "outboundHighWatermark", d.outboundHighWatermark,
                "Queued outbound bytes per stream above which it stops being writable."),
            .int(
                "outboundLowWatermark", d.outboundLowWatermark,
                "Queued outbound bytes per stream below which it is writable again."),
            .double(
                "idleTimeoutSeconds", seconds(d.idleTimeout),
                "Close a connection with no open stream after this long (0: never)."),
            .double(
                "handshakeTimeoutSeconds", seconds(d.handshakeTimeout),
                "The peer's preface and SETTINGS, and on servers the PROXY header, TLS handshake and protocol detection, must complete within this time."
            ),
            .double(
                "http1HeaderTimeoutSeconds", seconds(d.http1HeaderTimeout),
                "HTTP/1.1: a request head must be complete within this time."),
            .double(
                "http1KeepAliveTimeoutSeconds", seconds(d.http1KeepAliveTimeout),
                "HTTP/1.1: an idle keep-alive connection is closed after this long."),
            .double(
                "stallTimeoutSeconds", seconds(d.stallTimeout),
                "Reset a stream with output queued but no write progress for this long; HTTP/1.1: close a connection whose socket stayed full this long (its peer read too little to drain it) (0: never)."
            ),
            .double(
                "gracefulShutdownTimeoutSeconds", seconds(d.gracefulShutdownTimeout),
                "After a graceful GOAWAY, how long in-flight streams may take; HTTP/1.1: how long a draining connection may stay open."
            ),
            .double(
                "keepaliveIntervalSeconds", seconds(d.keepaliveInterval), "Send a keepalive PING this often (0: off)."),
            .double(
                "keepaliveTimeoutSeconds", seconds(d.keepaliveTimeout), "How long a keepalive PING may go unanswered."),
            .int(
                "maxResetsPerSecond", d.maxResetsPerSecond,
                "RST_STREAM frames a peer may send per second (rapid reset, CVE-2023-44487)."),
            .int(
                "maxContinuationFrames", d.maxContinuationFrames,
                "CONTINUATION frames allowed after one HEADERS frame (CVE-2024-27316)."),
            .int("maxPingsPerSecond", d.maxPingsPerSecond, "PING frames a peer may send per second."),
            .int("maxSettingsPerSecond", d.maxSettingsPerSecond, "SETTINGS frames a peer may send per second."),
            .int(
                "maxEmptyDataFramesPerSecond", d.maxEmptyDataFramesPerSecond,
                "Empty DATA frames without END_STREAM a peer may send per second (CVE-2019-9518)."),
            .int(
                "maxWindowUpdatesPerSecond", d.maxWindowUpdatesPerSecond,
                "WINDOW_UPDATE frames a peer may send per second."),
            .int("maxPrioritiesPerSecond", d.maxPrioritiesPerSecond, "PRIORITY frames a peer may send per second."),
        ])
    }
}
