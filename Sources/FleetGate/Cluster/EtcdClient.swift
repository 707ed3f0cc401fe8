import AsyncHTTPClient
import CoreMetrics
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// The few etcd v3 calls the cluster needs, through etcd's JSON gateway (`/v3/*`, served by
/// etcd 3.4 and later, Debian's `etcd-server` included) over async-http-client.
///
/// 1. Leases: grant, keep alive (one request per renewal: the gateway maps it onto the
///    bidirectional stream, one message each way), revoke.
/// 2. Keys: put (optionally under a lease), range over a prefix, delete.
/// 3. Watch a prefix from a revision: one long POST whose body is newline-delimited JSON.
/// 4. Count what is written (requests and bytes), for the load figures of issue #21.
///
/// Keys and values are base64 in the JSON, 64-bit integers strings (proto3 JSON mapping). The
/// endpoints are tried in order; a failure moves to the next one for the next call.
/// docs/architecture.md says why the JSON gateway and not gRPC.
final class EtcdClient: Sendable {
    /// A failed etcd call.
    struct Failure: Error, CustomStringConvertible {
        var message: String
        var description: String { "etcd: \(self.message)" }
    }

    /// One key and value.
    struct KeyValue: Sendable {
        var key: String
        var value: ByteBuffer
        /// The store's revision of the key's last write (0: not said).
        var modRevision: Int64 = 0
    }

    /// A watch event.
    enum Event: Sendable {
        case put(KeyValue)
        case delete(key: String)
    }

    let http: HTTPClient
    let endpoints: [String]
    private let current = Atomic<Int>(0)
    /// Write requests sent (put, delete, grant, keepalive, revoke) and their body bytes.
    let writes = Atomic<Int>(0)
    let writtenBytes = Atomic<Int>(0)

    private let writeCounter: Counter?
    private let byteCounter: Counter?

    init(http: HTTPClient, endpoints: [String], writes: Counter? = nil, bytes: Counter? = nil) {
        self.http = http
        self.writeCounter = writes
        self.byteCounter = bytes
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
    }

    // MARK: Leases

    /// Grants a lease of `ttl` seconds; returns its id.
    func grant(ttl: Int) async throws -> Int64 {
        let reply = try await self.call("/v3/lease/grant", ["TTL": "\(ttl)"], write: true)
        guard let id = (reply["ID"] as? String).flatMap(Int64.init) else { throw Failure(message: "grant: no ID") }
        return id
    }

    /// Renews a lease; returns the TTL left, 0 when the lease is gone.
    func keepAlive(_ lease: Int64) async throws -> Int {
        let reply = try await self.call("/v3/lease/keepalive", ["ID": "\(lease)"], write: true)
        let result = reply["result"] as? [String: Any] ?? reply
        return (result["TTL"] as? String).flatMap(Int.init) ?? 0
    }

    /// Revokes a lease and so deletes every key under it.
    func revoke(_ lease: Int64) async throws {
        _ = try await self.call("/v3/lease/revoke", ["ID": "\(lease)"], write: true)
    }

    // MARK: Keys

    /// Writes `key` (under `lease` when given); returns the store's revision of the write (0: not said).
    @discardableResult
    func put(_ key: String, value: ByteBuffer, lease: Int64?) async throws -> Int64 {
        var body: [String: Any] = [
            "key": Self.base64(key), "value": Data(value.readableBytesView).base64EncodedString(),
        ]
        if let lease { body["lease"] = "\(lease)" }
        let reply = try await self.call("/v3/kv/put", body, write: true)
        return ((reply["header"] as? [String: Any])?["revision"] as? String).flatMap(Int64.init) ?? 0
    }

    /// Every key under `prefix`, and the store's revision they were read at.
    func range(prefix: String) async throws -> (revision: Int64, values: [KeyValue]) {
        let reply = try await self.call(
            "/v3/kv/range", ["key": Self.base64(prefix), "range_end": Self.base64(Self.rangeEnd(prefix))], write: false)
        let header = reply["header"] as? [String: Any]
        let revision = (header?["revision"] as? String).flatMap(Int64.init) ?? 0
        let kvs = (reply["kvs"] as? [[String: Any]] ?? []).compactMap(Self.keyValue)
        return (revision, kvs)
    }

    // MARK: Watch

    /// Watches `prefix` from `revision` on, calling `onEvent` for each change, until the stream
    /// breaks (throws) or the task is cancelled.
    func watch(prefix: String, from revision: Int64, onEvent: (Event) -> Void) async throws {
        let body: [String: Any] = [
            "create_request": [
                "key": Self.base64(prefix), "range_end": Self.base64(Self.rangeEnd(prefix)),
                "start_revision": "\(revision)",
            ]
        ]
        var request = HTTPClientRequest(url: self.endpoint + "/v3/watch")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        let response: HTTPClientResponse
        do {
            response = try await self.http.execute(request, timeout: .hours(24 * 365))
        } catch {
            self.failover()
            throw error
        }
        guard response.status == .ok else { throw Failure(message: "watch: HTTP \(response.status.code)") }
        var pending = ByteBuffer()
        for try await part in response.body {
            pending.writeImmutableBuffer(part)
            while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - pending.readerIndex
                let line = pending.readSlice(length: length)!
                pending.moveReaderIndex(forwardBy: 1)
                guard
                    let object = try? JSONSerialization.jsonObject(with: Data(line.readableBytesView))
                        as? [String: Any],
                    let result = object["result"] as? [String: Any]
                else { throw Failure(message: "watch: malformed message") }
                if result["canceled"] as? Bool == true { throw Failure(message: "watch: canceled (compacted?)") }
                for event in result["events"] as? [[String: Any]] ?? [] {
                    guard let kv = event["kv"] as? [String: Any] else { continue }
                    if event["type"] as? String == "DELETE" {
                        if let key = (kv["key"] as? String).flatMap(Self.decode) { onEvent(.delete(key: key)) }
                    } else if let value = Self.keyValue(kv) {
                        onEvent(.put(value))
                    }
                }
            }
            if pending.readableBytes > 4 << 20 { throw Failure(message: "watch: message over 4 MiB") }
            pending.discardReadBytes()
        }
        throw Failure(message: "watch: stream ended")
    }

    // MARK: Transport

    private var endpoint: String { self.endpoints[self.current.load(ordering: .relaxed) % self.endpoints.count] }

    private func failover() {
        if self.endpoints.count > 1 { self.current.wrappingAdd(1, ordering: .relaxed) }
    }

    private func call(_ path: String, _ body: [String: Any], write: Bool) async throws -> [String: Any] {
        let bytes = try JSONSerialization.data(withJSONObject: body)
        if write {
            self.writes.wrappingAdd(1, ordering: .relaxed)
            self.writtenBytes.wrappingAdd(bytes.count, ordering: .relaxed)
            self.writeCounter?.increment()
            self.byteCounter?.increment(by: Int64(bytes.count))
        }
        var request = HTTPClientRequest(url: self.endpoint + path)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: bytes))
        do {
            let response = try await self.http.execute(request, timeout: .seconds(3))
            let reply = try await response.body.collect(upTo: 8 << 20)
            guard response.status == .ok else {
                throw Failure(message: "\(path): HTTP \(response.status.code)")
            }
            guard let object = try JSONSerialization.jsonObject(with: Data(reply.readableBytesView)) as? [String: Any]
            else {
                throw Failure(message: "\(path): not a JSON object")
            }
            return object
        } catch {
            self.failover()
            throw error
        }
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static func decode(_ base64: String) -> String? {
        Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The end of the range of keys starting with `prefix`: the prefix with its last byte + 1.
    static func rangeEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        bytes[bytes.count - 1] += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func keyValue(_ kv: [String: Any]) -> KeyValue? {
        guard let key = (kv["key"] as? String).flatMap(Self.decode) else { return nil }
        let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
        let revision = (kv["mod_revision"] as? String).flatMap(Int64.init) ?? 0
        return KeyValue(key: key, value: ByteBuffer(bytes: value), modRevision: revision)
    }
}
