import FleetConfiguration
import Foundation
import NIOSSL
import Synchronization

/// The TLS context a listener uses for its next connection; a reload swaps it.
final class TLSContextBox: Sendable {
    /// A context and the notAfter of the leaf certificate it serves.
    struct Served: Sendable {
        var context: NIOSSLContext
        /// Unix seconds.
        var notAfter: Int64
    }

    private let state: Mutex<Served?>

    init(_ served: Served?) { self.state = Mutex(served) }

    /// The context for the next connection; nil: cleartext.
    var context: NIOSSLContext? { self.state.withLock { $0?.context } }

    /// The notAfter of the certificate the next connection gets (nil: cleartext): what is served, not what
    /// is on disk (helper-73: a renewed file not yet reloaded cleared the expiry alert).
    var notAfter: Int64? { self.state.withLock { $0?.notAfter } }

    /// Replaces the context.
    func set(_ served: Served?) { self.state.withLock { $0 = served } }

    /// Loads PEM files into a server TLS context offering `alpn`; errors name the configuration key and file.
    /// - Parameter clientCA: issue #20: require a client certificate signed by one of the CAs in
    ///   this PEM file (mTLS; no host name check: a car's identity is in its SAN URIs).
    static func makeContext(
        _ files: GatewayConfiguration.TLSFiles, key scope: String, alpn: [String], clientCA: String? = nil
    ) throws -> Served {
        // A missing or unreadable file says so (helper-82: BoringSSL's `failedToLoadCertificate` and an
        // `IOError` did not).
        for (file, name) in [(files.certificateChain, "certificateChainFile"), (files.privateKey, "privateKeyFile")]
        where !FileManager.default.isReadableFile(atPath: file) {
            throw ConfigurationError(
                .unreadableFile, key: "\(scope).\(name)", value: file,
                FileManager.default.fileExists(atPath: file) ? "cannot read the file" : "no such file")
        }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(files.certificateChain)
            guard !chain.isEmpty else { throw PKIError("no certificate in the file") }
        } catch {
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
        do {
            return Served(
                context: try NIOSSLContext(configuration: tls), notAfter: Int64(chain.first?.notValidAfter ?? 0))
        } catch {
            throw ConfigurationError(
                .invalidValue, key: "\(scope).privateKeyFile", value: files.privateKey,
                "the certificate and key do not form a TLS context: \(error)", cause: error)
        }
    }
}
