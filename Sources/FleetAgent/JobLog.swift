import FleetProtocol
import Foundation
import Synchronization

/// `fleet-agent --job-log FILE`: one JSON line per job, written with one `write(2)` as the job
/// ends, so the record survives `kill -9` of the agent a moment later (DESIGN.md, Contracts: job
/// records). Tests and LoadTests count zone violations, lost and repeated tokens from these
/// records, never from the gateway's headers alone. No prompt or completion text is written.
public final class JobLog: Sendable {
    /// One job's record.
    public struct Record: Codable, Sendable, Hashable {
        public var requestID: String
        /// The zone the gateway enforced for the request (its `x-fleet-zone` header), if sent.
        public var zone: String?
        /// The region this car serves.
        public var region: String
        public var vehicleID: String
        /// The token index the job started at (0, or N for a continuation).
        public var resumeFrom: Int
        /// Tokens this job produced.
        public var tokens: Int
        /// `completed`, `cancelled` or `failed`.
        public var outcome: String
        /// Unix seconds at the start and the end.
        public var started: Double
        public var ended: Double

        enum CodingKeys: String, CodingKey {
            case zone, region, tokens, outcome, started, ended
            case requestID = "request_id"
            case vehicleID = "vehicle_id"
            case resumeFrom = "resume_from"
        }
    }

    let region: String
    let vehicleID: String
    private let file: File

    /// The open file, shared by the logs of many in-process cars (the load harness runs thousands).
    private final class File: Sendable {
        let descriptor: Mutex<Int32>
        init(_ fd: Int32) { self.descriptor = Mutex(fd) }
        deinit { self.descriptor.withLock { _ = close($0) } }
    }

    /// Opens (creating or appending to) `path`.
    /// - Throws: when the file cannot be opened, naming it.
    public init(path: String, region: String, vehicleID: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw EngineError(code: "job_log", message: "cannot open the job log '\(path)': errno \(errno)")
        }
        self.file = File(fd)
        self.region = region
        self.vehicleID = vehicleID
    }

    /// Another car's log in the same file (one descriptor, one `write(2)` per record, so lines never interleave).
    public init(sharing other: JobLog, region: String, vehicleID: String) {
        self.file = other.file
        self.region = region
        self.vehicleID = vehicleID
    }

    /// Appends one record as one line.
    public func append(_ record: Record) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard var line = try? encoder.encode(record) else { return }
        line.append(UInt8(ascii: "\n"))
        self.file.descriptor.withLock { fd in
            line.withUnsafeBytes { bytes in _ = write(fd, bytes.baseAddress, bytes.count) }
        }
    }

    /// Reads every record of a job log (for tests and load tests).
    public static func read(path: String) throws -> [Record] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
    }
}
