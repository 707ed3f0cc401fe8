public import NIOCore

/// Settings and limits of one HTTP/2 connection, either role.
///
/// The SETTINGS we announce come from here, and so do the abuse limits we enforce ourselves
/// (we count resets, CONTINUATION frames, PINGs and SETTINGS rather than rely on the patch level
/// of the system's libnghttp2).
public struct HTTP2Configuration: Sendable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS we announce (streams the peer may open).
    public var maxConcurrentStreams: Int
    /// SETTINGS_INITIAL_WINDOW_SIZE we announce: per-stream receive window.
    public var initialStreamWindowSize: Int
    /// Our connection-level receive window.
    public var connectionWindowSize: Int
    /// SETTINGS_MAX_FRAME_SIZE we announce.
    public var maxFrameSize: Int
    /// SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce: decoding stops at the limit and the
    /// stream is reset (HTTP/1.1 answers 431).
    public var maxHeaderListSize: Int
    /// Header lists over ``maxHeaderListSize`` a peer may send in a minute before GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    public var maxOversizedHeaderListsPerMinute: Int
    /// Queued outbound bytes per stream above which ``HTTPStream/isWritable`` turns false.
    public var outboundHighWatermark: Int
    /// Queued outbound bytes per stream below which it turns true again.
    public var outboundLowWatermark: Int
    /// Close a connection with no open stream for this long (GOAWAY NO_ERROR).
    public var idleTimeout: TimeAmount?
    /// Close a connection whose peer has not completed the preface and SETTINGS in this time. On a
    /// server listener the same time bounds everything before the protocol is known: the PROXY
    /// header, the TLS handshake and the first bytes that tell h2c from HTTP/1.1.
    public var handshakeTimeout: TimeAmount
    /// HTTP/1.1: a request head must be complete this long after the protocol is known (slowloris).
    public var http1HeaderTimeout: TimeAmount
    /// HTTP/1.1: an idle keep-alive connection is closed after this long without a new request
    /// head (the head must also be complete by then), counted from the previous response's last
    /// byte written to the socket.
    public var http1KeepAliveTimeout: TimeAmount
    /// Reset a stream that has output queued but made no write progress for this long (a peer
    /// holding its window at zero); the connection's other streams go on. On an HTTP/1.1
    /// connection of a server: close it when its peer stopped reading (the socket not writable)
    /// for this long.
    public var stallTimeout: TimeAmount?
    /// After a graceful GOAWAY, how long in-flight streams may take before the connection closes.
    public var gracefulShutdownTimeout: TimeAmount
    /// Send a PING this often when set, and close if none is answered within ``keepaliveTimeout``.
    public var keepaliveInterval: TimeAmount?
    /// How long a keepalive PING may go unanswered.
    public var keepaliveTimeout: TimeAmount
    /// Rapid-reset guard (CVE-2023-44487): RST_STREAM frames a peer may send in one second.
    public var maxResetsPerSecond: Int
    /// CONTINUATION frames allowed after one HEADERS frame (CVE-2024-27316 class of floods).
    public var maxContinuationFrames: Int
    /// PING frames (not ACKs) a peer may send in one second.
    public var maxPingsPerSecond: Int
    /// SETTINGS frames (not ACKs) a peer may send in one second.
    public var maxSettingsPerSecond: Int
    /// Empty DATA frames without END_STREAM a peer may send in one second (CVE-2019-9518: each
    /// asks work of us and carries nothing).
    public var maxEmptyDataFramesPerSecond: Int
    /// WINDOW_UPDATE frames a peer may send in one second (a flood of 1-byte increments).
    public var maxWindowUpdatesPerSecond: Int
    /// PRIORITY frames a peer may send in one second (RFC 9113 deprecates them; a flood costs us).
    public var maxPrioritiesPerSecond: Int

    public init(
        maxConcurrentStreams: Int = 256,
        initialStreamWindowSize: Int = 65_535,
        connectionWindowSize: Int = 1 << 20,
        maxFrameSize: Int = 16_384,
        maxHeaderListSize: Int = 16_384,
        maxOversizedHeaderListsPerMinute: Int = 4,
        outboundHighWatermark: Int = 64 * 1024,
        outboundLowWatermark: Int = 16 * 1024,
        idleTimeout: TimeAmount? = .seconds(300),
        handshakeTimeout: TimeAmount = .seconds(10),
        http1HeaderTimeout: TimeAmount = .seconds(10),
        http1KeepAliveTimeout: TimeAmount = .seconds(30),
        stallTimeout: TimeAmount? = .seconds(60),
        gracefulShutdownTimeout: TimeAmount = .seconds(30),
        keepaliveInterval: TimeAmount? = nil,
        keepaliveTimeout: TimeAmount = .seconds(10),
        maxResetsPerSecond: Int = 200,
        maxContinuationFrames: Int = 16,
        maxPingsPerSecond: Int = 50,
        maxSettingsPerSecond: Int = 50,
        maxEmptyDataFramesPerSecond: Int = 100,
        maxWindowUpdatesPerSecond: Int = 10_000,
        maxPrioritiesPerSecond: Int = 1_000
    ) {
        self.maxConcurrentStreams = maxConcurrentStreams
        self.initialStreamWindowSize = initialStreamWindowSize
        self.connectionWindowSize = connectionWindowSize
        self.maxFrameSize = maxFrameSize
        self.maxHeaderListSize = maxHeaderListSize
        self.maxOversizedHeaderListsPerMinute = maxOversizedHeaderListsPerMinute
        self.outboundHighWatermark = outboundHighWatermark
        self.outboundLowWatermark = outboundLowWatermark
        self.idleTimeout = idleTimeout
        self.handshakeTimeout = handshakeTimeout
        self.http1HeaderTimeout = http1HeaderTimeout
        self.http1KeepAliveTimeout = http1KeepAliveTimeout
        self.stallTimeout = stallTimeout
        self.gracefulShutdownTimeout = gracefulShutdownTimeout
        self.keepaliveInterval = keepaliveInterval
        self.keepaliveTimeout = keepaliveTimeout
        self.maxResetsPerSecond = maxResetsPerSecond
        self.maxContinuationFrames = maxContinuationFrames
        self.maxPingsPerSecond = maxPingsPerSecond
        self.maxSettingsPerSecond = maxSettingsPerSecond
        self.maxEmptyDataFramesPerSecond = maxEmptyDataFramesPerSecond
        self.maxWindowUpdatesPerSecond = maxWindowUpdatesPerSecond
        self.maxPrioritiesPerSecond = maxPrioritiesPerSecond
    }

    /// The defaults.
    public static var defaults: Self { Self() }
}
