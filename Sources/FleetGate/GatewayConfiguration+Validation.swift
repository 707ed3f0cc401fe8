public import Configuration
public import FleetConfiguration
import FleetGeo
import Foundation

/// The rules the gateway checks before it binds that reading a configuration does not: trust (#20),
/// listeners' ports, the admin token. `config check` applies them too (``checked(config:)``).
extension GatewayConfiguration {
    /// Issue #20: certificate authentication needs a TLS tunnel listener and a fleet CA; audits need
    /// endpoints in known regions. Checked when the gateway is built
    /// (``Gateway/init(configuration:group:logger:logLevel:reloadSource:)``) and by `fleetgate config check`
    /// (``checked(config:)``), not when the configuration is read, so that tools reading a configuration need no CA.
    public func validateTrust() throws {
        if self.tunnel.auth == .certificate {
            guard self.listeners.tunnel.files != nil else {
                throw ConfigurationError(
                    .missingValue, key: "listeners.tunnel.certificateChainFile",
                    "is required with tunnel.auth: certificate (the default): cars authenticate with mTLS; "
                        + "issue it with `fleetgate pki issue-server`, or set tunnel.auth: token for development")
            }
            guard self.tunnel.caFile != nil else {
                throw ConfigurationError(
                    .missingValue, key: "tunnel.caFile",
                    "is required with tunnel.auth: certificate (the default): the fleet CA from "
                        + "`fleetgate pki init-ca`, or set tunnel.auth: token for development")
            }
        }
        if let file = self.tunnel.revocationFile {
            do { _ = try RevocationList.load(path: file, missingIsEmpty: false) } catch {
                throw ConfigurationError(.invalidValue, key: "tunnel.revocationFile", value: file, error.description)
            }
        }
        try self.checkEndpointRegions()
        for endpoint in self.audit.endpoints { try Self.checkHTTPURL(endpoint.baseURL, key: "audit.endpoints") }
        if let file = self.audit.quarantineFile {
            // Written by the gateway: its directory must take a new file, and what is there must parse.
            let directory = URL(fileURLWithPath: file).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw ConfigurationError(
                    .invalidValue, key: "audit.quarantineFile", value: file,
                    "its directory is not writable by the gateway (it appends a line per quarantine)")
            }
            do { _ = try RevocationList.load(path: file, missingIsEmpty: true) } catch {
                throw ConfigurationError(.invalidValue, key: "audit.quarantineFile", value: file, error.description)
            }
        }
        for (zone, share) in self.audit.zoneFractions where !(0...1).contains(share) {
            throw ConfigurationError(
                .invalidValue, key: "audit.zoneFractions", value: "\(zone)=\(share)", "the share must be 0–1")
        }
    }

    /// Central and audit endpoints name regions of the region map. Checked when the configuration is
    /// read, and by a reload of the region map alone, whose map a restart would otherwise refuse
    /// (helper-101: a map without a central endpoint's region was swapped in; every later reload and
    /// the next start failed on it).
    func checkEndpointRegions() throws {
        for (key, region) in self.central.endpoints.map({ ("central.endpoints", $0.region) })
            + self.audit.endpoints.map({ ("audit.endpoints", $0.region) })
        where self.geo.regionMap.zone(ofRegion: region) == nil {
            throw ConfigurationError(.invalidValue, key: key, value: region, "region is not in the region map")
        }
    }

    /// Two listeners on one port of one address: `serve` failed to bind the second after starting the
    /// first, while `config check` passed (helper-73: the client port given as the probes port).
    func checkPortsDistinct() throws {
        var listeners: [(key: String, host: String, port: Int)] = [
            ("listeners.client.port", self.listeners.host, self.listeners.client.port),
            ("listeners.tunnel.port", self.listeners.host, self.listeners.tunnel.port),
            ("admin.port", self.admin.host, self.admin.port),
        ]
        if self.listeners.tls.files != nil {
            listeners.append(("listeners.tls.port", self.listeners.host, self.listeners.tls.port))
        }
        if let host = self.admin.probesHost { listeners.append(("admin.probesPort", host, self.admin.probesPort)) }
        let wildcard: Set<String> = ["0.0.0.0", "::", "[::]", ""]
        for (i, later) in listeners.enumerated() where later.port != 0 {
            for earlier in listeners[..<i]
            where earlier.port == later.port
                && (earlier.host == later.host || wildcard.contains(earlier.host) || wildcard.contains(later.host))
            {
                throw ConfigurationError(
                    .invalidValue, key: later.key, value: "\(later.port)",
                    "is also \(earlier.key) on \(earlier.host): two listeners cannot share a port")
            }
        }
    }

    /// The configuration `fleetgate serve` would run: read, then every rule the gateway checks before it
    /// binds (``validateTrust()``, the admin token file, which the gateway reads when it builds its
    /// admin guard, and the listeners' TLS certificates and keys, which it loads — helper-82: a garbage
    /// certificate and a key of another certificate passed the check and stopped `serve`). `config
    /// check` uses it, so that a file it passes does not stop `serve` (helper-70: the shipped example
    /// passed the check and put systemd into a restart loop).
    public static func checked(config: ConfigReader) throws -> GatewayConfiguration {
        let configuration = try GatewayConfiguration(config: config)
        try configuration.validateTrust()
        if let file = configuration.admin.tokenFile { _ = try AdminGuard.readToken(file) }
        _ = try Gateway.clientContext(configuration)
        _ = try Gateway.tunnelContext(configuration)
        return configuration
    }
}
