import Crypto
import FleetProtocol
import Foundation
import Logging
import Synchronization

/// Application keys and their quotas, shared by every request (issue #18 deliverable 3).
///
/// Keys come from `auth.apiKeys` / `auth.apiKeysFile` (unlimited; swapped by a configuration
/// reload) and from the application key file (``GatewayConfiguration/Auth/appKeysFile``: SHA-256
/// of each key and its policy), which reloads on SIGHUP and `POST /admin/keys/reload`. A request presents its key once:
/// ``admit(authorization:model:now:)`` checks it, the model, the key's request and token buckets
/// and its concurrent streams, and returns a ``KeyLease`` the request ends with
/// ``KeyLease/finish(tokens:)``. The rules live in the pure ``KeyLimiter``; this type adds the
/// lock, the file and the metrics.
public final class AppKeys: Sendable {
    let file: String?
    /// The limiter, the unlimited keys and the file's policies (the limiter holds both).
    private let state: Mutex<(limiter: KeyLimiter, fixed: [KeyPolicy], file: [KeyPolicy], requiresKeys: Bool)>
    let metrics: GatewayMetrics
    let logger: Logger

    /// - Throws: ``GatewayError`` naming `auth.appKeysFile` and every problem in it.
    init(configuration: GatewayConfiguration, metrics: GatewayMetrics, logger: Logger, now: Double) throws {
        self.file = configuration.auth.appKeysFile
        let fixed = Self.unlimited(configuration.apiKeys)
        var policies: [KeyPolicy] = []
        if let file = self.file {
            do { policies = try KeyFile.load(path: file) } catch {
                throw GatewayError(code: .invalidConfiguration, message: "key 'auth.appKeysFile': \(error)")
            }
        }
        let requiresKeys = configuration.auth.requiresKeys
        self.state = Mutex((KeyLimiter(policies: fixed + policies, now: now), fixed, policies, requiresKeys))
        self.metrics = metrics
        self.logger = logger
        self.warnIfNoKey()
    }

    /// A key file is configured and no key is left: every request is refused (401), which an operator
    /// should hear of — not find out from the apps.
    private func warnIfNoKey() {
        guard self.state.withLock({ $0.requiresKeys && $0.limiter.isEmpty }) else { return }
        self.logger.warning(
            "A key file is configured and holds no key: every request is refused (401 invalid_api_key) until keys are added"
        )
    }

    private static func unlimited(_ keys: Set<String>) -> [KeyPolicy] {
        keys.sorted().enumerated().map { index, key in
            KeyPolicy.unlimited(name: "static-\(index)", sha256: Array(SHA256.hash(data: Data(key.utf8))))
        }
    }

    /// Whether keys are required: any key or any key file is configured, even one holding no key (the
    /// limiter holds keys only from those, so it is never the one to say so).
    public var required: Bool { self.state.withLock { $0.requiresKeys } }

    /// Re-reads the key file; a bad file changes nothing and says why.
    public func reload(now: Double) throws(KeyFileError) -> Int {
        guard let file = self.file else { return self.state.withLock { $0.limiter.entries.count } }
        let policies = try KeyFile.load(path: file)
        let count = self.state.withLock {
            $0.file = policies
            $0.limiter.replace(policies: $0.fixed + policies, now: now)
            return $0.limiter.entries.count
        }
        self.warnIfNoKey()
        return count
    }

    /// Swaps the unlimited keys (a configuration reload); the file's keys keep their state.
    func replaceStaticKeys(_ auth: GatewayConfiguration.Auth, now: Double) {
        let fixed = Self.unlimited(auth.apiKeys)
        self.state.withLock {
            $0.fixed = fixed
            $0.requiresKeys = auth.requiresKeys
            $0.limiter.replace(policies: fixed + $0.file, now: now)
        }
        self.warnIfNoKey()
    }

    /// Whether the `Authorization` header carries a known key (always true when none is configured).
    func authenticate(_ authorization: String?) -> Bool {
        guard self.required else { return true }
        guard let hash = Self.hash(authorization) else { return false }
        return self.state.withLock { $0.limiter.entries[hash] != nil }
    }

    /// The models the key may use, or nil when it may use any (or keys are not required).
    func allowedModels(_ authorization: String?) -> Set<String>? {
        guard self.required, let hash = Self.hash(authorization) else { return nil }
        return self.state.withLock { $0.limiter.entries[hash]?.policy.models }
    }

    /// Admits one request: its key, its model, the key's quotas.
    /// - Throws: 401 `invalid_api_key`, 404 `model_not_found` (a model the key may not use), or
    ///   429 `rate_limit_exceeded` with ``APIError/retryAfter``.
    func admit(authorization: String?, model: String, now: Double) throws(APIError) -> KeyLease {
        guard self.required else { return KeyLease(keys: nil, hash: [], policy: nil) }
        guard let hash = Self.hash(authorization) else { throw .invalidAPIKey }
        switch self.state.withLock({ $0.limiter.admit(keyHash: hash, model: model, now: now) }) {
        case .admitted(let policy):
            self.metrics.keyRequest(name: policy.name, result: "admitted")
            return KeyLease(keys: self, hash: hash, policy: policy)
        case .unknownKey:
            throw .invalidAPIKey
        case .modelNotAllowed(let name):
            self.metrics.keyRequest(name: name, result: "model_not_allowed")
            throw .modelNotFound(model)
        case .limited(let name, let reason, let retryAfter):
            self.metrics.keyRequest(name: name, result: reason.rawValue)
            var error = APIError.rateLimited("Rate limit reached for this key (\(reason.rawValue)).")
            error.retryAfter = retryAfter
            throw error
        }
    }

    func finish(hash: [UInt8], name: String, tokens: Int, now: Double) {
        self.state.withLock { $0.limiter.finish(keyHash: hash, tokens: tokens, now: now) }
        self.metrics.keyTokens(name: name, tokens: tokens)
    }

    /// SHA-256 of the bearer token, or nil without one.
    static func hash(_ authorization: String?) -> [UInt8]? {
        guard let token = authorization?.bearerToken else { return nil }
        return Array(SHA256.hash(data: token))
    }
}

/// One admitted request's hold on its key's quota: ends exactly once.
final class KeyLease: Sendable {
    private let keys: AppKeys?
    private let hash: [UInt8]
    private let policy: KeyPolicy?
    private let finished = Atomic<Bool>(false)

    init(keys: AppKeys?, hash: [UInt8], policy: KeyPolicy?) {
        self.keys = keys
        self.hash = hash
        self.policy = policy
    }

    /// The key may use central capacity only, never a car.
    var centralOnly: Bool { self.policy?.route == .central }

    /// Returns the stream and charges `tokens` (prompt + completion) to the key; later calls do nothing.
    func finish(tokens: Int, now: Double) {
        guard let keys, let policy, !self.finished.exchange(true, ordering: .relaxed) else { return }
        keys.finish(hash: self.hash, name: policy.name, tokens: tokens, now: now)
    }
}
