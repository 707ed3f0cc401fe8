import Foundation
import NIOCore
import ServiceLifecycle

/// Polls the revocation and CA files (issue #20): a changed revocation file is installed and
/// enforced on connected cars at once; a changed CA file gives new tunnels a new TLS context.
/// SIGHUP and `POST /admin/reload` do the same through ``GatewayReloader``.
struct TrustWatcher: Service {
    let reloader: GatewayReloader

    func run() async throws {
        try? await cancelWhenGracefulShutdown { try await self.poll() }
    }

    private func poll() async throws {
        let core = self.reloader.core
        let interval = core.configuration.tunnel.trustPollInterval
        var caStamp = Self.stamp(core.configuration.tunnel.caFile)
        while true {
            try await Task.sleep(nanoseconds: UInt64(interval.nanoseconds))
            if core.trust.reloadIfChanged() { core.enforceTrust() }
            let stamp = Self.stamp(core.configuration.tunnel.caFile)
            if stamp != caStamp {
                caStamp = stamp  // a file that does not load is tried again when it changes, not every poll
                self.reloader.reloadTunnelCA()
            }
        }
    }

    static func stamp(_ path: String?) -> String? { path.map(FleetTrust.stamp) }
}
