/// The parsers that read the network (issue #20), one libFuzzer target each. Every target's
/// executable and the corpus replay test call ``run(_:)``, so CI exercises the same code the fuzzer did.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// OpenAI request bodies through the gateway's request validator, for every completion API.
    case request
    /// Upstream SSE bytes, in random splits, through the relay that decides what the client sees.
    case sse
    /// The car's status stream (NDJSON), in random splits, through the gateway's decoder and hello checks.
    case status
    /// Region maps and the gateway's configuration file: the YAML loaders with file:line errors.
    case regions
    /// PROXY protocol v2 headers, in random splits, through the real channel handler.
    case proxy
    /// Socket peer and `X-Forwarded-For` values through the client address and origin resolvers.
    case origin

    /// Runs one input.
    /// - Throws: ``FuzzFinding`` when an invariant the parser promises does not hold (a crash
    ///   needs no throw: it is the finding).
    public func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        switch self {
        case .request: try RequestFuzz.run(bytes)
        case .sse: try SSEFuzz.run(bytes)
        case .status: try StatusFuzz.run(bytes)
        case .regions: try RegionsFuzz.run(bytes)
        case .proxy: try ProxyFuzz.run(bytes)
        case .origin: try OriginFuzz.run(bytes)
        }
    }

    /// The body of every target's `LLVMFuzzerTestOneInput`: runs the input and traps on a finding,
    /// which libFuzzer records as a crash with its input.
    public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do throws(FuzzFinding) {
            try self.run(bytes)
        } catch {
            fatalError("fuzz-\(self.rawValue): \(error)")
        }
        return 0
    }
}

/// An invariant that failed on an input.
public struct FuzzFinding: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// Throws a finding unless `condition` holds.
func check(_ condition: Bool, _ message: @autoclosure () -> String) throws(FuzzFinding) {
    if !condition { throw FuzzFinding(message()) }
}
