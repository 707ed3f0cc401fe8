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
    /// - Parameter clientCA: issue #20: require a client certificate signed by one of the CAs in
    ///   this PEM file (mTLS; no host name check: a car's identity is in its SAN URIs).
    static func makeContext(
        _ files: GatewayConfiguration.TLSFiles, key scope: String, alpn: [String], clientCA: String? = nil
    ) throws -> NIOSSLContext {
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
        if let clientCA {
            do {
                let roots = try NIOSSLCertificate.fromPEMFile(clientCA)
                guard !roots.isEmpty else { throw PKIError("no certificate in the file") }
                tls.trustRoots = .certificates(roots)
                tls.additionalTrustRoots = []
            } catch {
                throw ConfigurationError(
                    .unreadableFile, key: "tunnel.caFile", value: clientCA, "cannot load the fleet CA: \(error)")
            }
            tls.certificateVerification = .noHostnameVerification
        }
        do { return try NIOSSLContext(configuration: tls) } catch {
            throw ConfigurationError(
                .invalidValue, key: "\(scope).privateKeyFile", value: files.privateKey,
                "the certificate and key do not form a TLS context: \(error)", cause: error)
        }
    }
}
