import FleetConfiguration
import NIOSSL
import Synchronization

/// The TLS context a listener uses for its next connection; a reload swaps it.
final class TLSContextBox: Sendable {
    private let state: Mutex<NIOSSLContext?>

    init(_ context: NIOSSLContext?) { self.state = Mutex(context) }

    /// The context for the next connection; nil: cleartext.
    var context: NIOSSLContext? { self.state.withLock { $0 } }

    /// Replaces the context.
    func set(_ context: NIOSSLContext?) { self.state.withLock { $0 = context } }

    /// Loads PEM files into a server TLS context offering `alpn`; errors name the configuration key and file.
    static func makeContext(_ files: GatewayConfiguration.TLSFiles, key scope: String, alpn: [String]) throws
        -> NIOSSLContext
    {
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain) } catch {
            throw ConfigurationError(
                .unreadableFile, key: "\(scope).certificateChainFile", value: files.certificateChain,
                "cannot load PEM certificates: \(error)", cause: error)
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: files.privateKey, format: .pem) } catch {
            // The error names the file, never its contents.
            throw ConfigurationError(
                .unreadableFile, key: "\(scope).privateKeyFile", value: files.privateKey,
                "cannot load a PEM private key: \(type(of: error))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.applicationProtocols = alpn
        do { return try NIOSSLContext(configuration: tls) } catch {
            throw ConfigurationError(
                .invalidValue, key: "\(scope).privateKeyFile", value: files.privateKey,
                "the certificate and key do not form a TLS context: \(error)", cause: error)
        }
    }
}
