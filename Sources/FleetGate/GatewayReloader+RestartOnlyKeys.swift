extension GatewayReloader {
    /// The restart-only keys ``keepRestartOnlyKeys(from:in:)`` keeps: `all` of them (a group by its
    /// prefix, `central`), and those that `changed`.
    struct RestartOnlyKeys {
        var all: [String] = []
        var changed: [String] = []
    }

    /// Puts the running values of restart-only keys into `next`; returns them, and those that differed.
    static func keepRestartOnlyKeys(from running: GatewayConfiguration, in next: inout GatewayConfiguration)
        -> RestartOnlyKeys
    {
        var keys = RestartOnlyKeys()
        func keep<T: Equatable>(_ key: String, _ path: WritableKeyPath<GatewayConfiguration, T>) {
            keys.all.append(key)
            if next[keyPath: path] != running[keyPath: path] { keys.changed.append(key) }
            next[keyPath: path] = running[keyPath: path]
        }
        keep("listeners.host", \.listeners.host)
        keep("listeners.client.port", \.listeners.client.port)
        keep("listeners.client.proxyProtocolFrom", \.listeners.client.proxyProtocolFrom)
        keep("listeners.tls.proxyProtocolFrom", \.listeners.tls.proxyProtocolFrom)  // helper-106: read at start
        keep("listeners.tls.port", \.listeners.tls.port)
        keep("listeners.tunnel.port", \.listeners.tunnel.port)
        keep("listeners.tunnel.allowCleartext", \.listeners.tunnel.allowCleartext)
        // A listener's TLS can be renewed, not switched on or off (both its files named when it would be).
        func keepSwitch(
            _ listener: String, _ path: WritableKeyPath<GatewayConfiguration, GatewayConfiguration.TLSFiles?>
        ) {
            guard (next[keyPath: path] == nil) != (running[keyPath: path] == nil) else { return }
            keys.changed += ["\(listener).certificateChainFile", "\(listener).privateKeyFile"]
            next[keyPath: path] = running[keyPath: path]
        }
        keepSwitch("listeners.tls", \.listeners.tls.files)
        keepSwitch("listeners.tunnel", \.listeners.tunnel.files)
        // Each key by name, not the group (helper-101: `admin` was named for a changed port).
        keep("admin.host", \.admin.host)
        keep("admin.port", \.admin.port)
        keep("admin.tokenFile", \.admin.tokenFile)
        keep("admin.allowedHosts", \.admin.allowedHosts)
        keep("admin.probesHost", \.admin.probesHost)
        keep("admin.probesPort", \.admin.probesPort)
        keep("dispatch.policy", \.dispatch.policy)
        keep("dispatch.hedgeBudget", \.dispatch.hedgeBudget)
        // The prefix table is built once, at the start: a reload took these three without a word, though the
        // docs say restart.
        keep("dispatch.affinity", \.dispatch.affinity)
        keep("dispatch.affinityEntries", \.dispatch.affinityEntries)
        keep("dispatch.affinityTtlSeconds", \.dispatch.affinityTTL)
        keep("central", \.central)
        keep("eventLoopThreads", \.eventLoopThreads)
        keep("fleetSecret", \.fleetSecret)
        keys.all.append("fleetSecretFile")  // read into fleetSecret at the start
        keep("tunnel.auth", \.tunnel.auth)
        keep("tunnel.revocationFile", \.tunnel.revocationFile)
        keep("tunnel.trustPollSeconds", \.tunnel.trustPollInterval)
        keep("audit.endpoints", \.audit.endpoints)
        keep("audit.queueCapacity", \.audit.queueCapacity)
        keep("audit.concurrency", \.audit.concurrency)
        keep("audit.quarantineFile", \.audit.quarantineFile)
        // The replicas' service is built once, at the start (taken without a word too).
        keep("cluster", \.cluster)
        next.fallbackToFreePorts = running.fallbackToFreePorts
        return keys
    }
}
