/// Reads the car's status stream (DESIGN.md, Contracts: status stream): splits the
/// `application/x-ndjson` body into lines of at most ``FleetStatus/maxLineBytes`` and decodes each
/// into a ``StatusMessage`` of this build's schema version.
///
/// Responsibilities:
/// 1. frame lines however the bytes arrive (a line may span any number of DATA frames; empty lines
///    are skipped);
/// 2. bound what it holds: a line longer than ``FleetStatus/maxLineBytes`` is a ``Failure``, never
///    unbounded growth;
/// 3. decode each line, and refuse a malformed one, an unsupported `"v"` or values out of range
///    (``FleetStatus/problem(with:)``);
/// 4. stop at the first failure: the tunnel is then closed, so nothing after it is read.
///
/// What a message means for the car (hello before state, credential, region) is the gateway's
/// `CarSession`'s business; this type only turns bytes into messages.
public struct StatusStreamDecoder: Sendable {
    /// Why the stream must be refused; `reason` goes into the GOAWAY's debug data.
    public struct Failure: Error, Hashable, Sendable {
        public var reason: String
    }

    private var line: [UInt8] = []
    private var failed = false

    public init() {}

    /// Bytes of an unfinished line held between calls (at most ``FleetStatus/maxLineBytes``).
    public var bufferedBytes: Int { self.line.count }

    /// Bytes of storage held between calls: none once every line fed so far is complete. A car's
    /// status stream is idle nearly all its life, so each of thousands of tunnels would otherwise
    /// keep its hello's ~1 KiB.
    public var heldCapacity: Int { self.line.capacity }

    /// Feeds bytes and returns, in order, the messages of the lines they complete; a failure is
    /// the last element, and every later call returns nothing.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [Result<StatusMessage, Failure>] {
        guard !self.failed else { return [] }
        var out: [Result<StatusMessage, Failure>] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                guard !self.line.isEmpty else { continue }
                let result = Self.decode(self.line)
                self.line.removeAll(keepingCapacity: true)
                out.append(result)
                if case .failure = result { return self.fail(out) }
            } else {
                self.line.append(byte)
                if self.line.count > FleetStatus.maxLineBytes {
                    out.append(.failure(Failure(reason: "status line over 16 KiB")))
                    return self.fail(out)
                }
            }
        }
        if self.line.isEmpty { self.line = [] }  // nothing pending: hold no storage while idle
        return out
    }

    private mutating func fail(_ out: [Result<StatusMessage, Failure>]) -> [Result<StatusMessage, Failure>] {
        self.failed = true
        self.line = []
        return out
    }

    /// One line's message.
    static func decode(_ line: [UInt8]) -> Result<StatusMessage, Failure> {
        guard let message = try? JSON.decode(StatusMessage.self, from: line) else {
            return .failure(Failure(reason: "malformed status message"))
        }
        // A member written twice is read as the decoder likes (helper-128: a hello with `vehicle_id` twice was
        // taken); refused as a request body with one is. The scan runs once a message, which cars send rarely.
        if let name = line.withUnsafeBytes({ JSONBody.firstNestedDuplicate(in: $0) }) {
            return .failure(Failure(reason: "member '\(name.prefix(32))' more than once in a status message"))
        }
        guard message.v == FleetStatus.version else {
            return .failure(Failure(reason: "unsupported status version \(message.v)"))
        }
        if let problem = FleetStatus.problem(with: message) { return .failure(Failure(reason: problem)) }
        return .success(message)
    }
}
