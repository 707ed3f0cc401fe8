import NIOCore
import ServiceLifecycle

/// Polls the revocation and quarantine files (issue #20): a changed file is installed and enforced on
/// connected cars at once. The fleet CA is polled with the other TLS files (``CredentialFilesWatcher``).
/// SIGHUP and `POST /admin/reload` do the same through ``GatewayReloader``.
struct TrustWatcher: Service {
    let reloader: GatewayReloader

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await self.poll() }
    }

    private func poll() async throws {
        let core = self.reloader.core
        let interval = core.configuration.tunnel.trustPollInterval
        while true {
            try await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
            if core.trust.reloadIfChanged() { core.enforceTrust() }
        }
    }
}
