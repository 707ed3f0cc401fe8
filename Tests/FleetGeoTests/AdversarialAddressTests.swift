import FleetGeo
import Testing

/// Issue #18 rows 1–3: client addresses an attacker (or a careless proxy) would send. Every value
/// arrives in `X-Forwarded-For` from a trusted proxy (10.0.0.0/8), with a map whose `private` rule
/// points at another zone (us-east), so a value that wrongly falls back to the proxy's own address
/// shows up as a zone leak.
@Suite("Adversarial client addresses")
struct AdversarialAddressTests {
    /// What the old default database answered: 6to4 (2002::/16) as JP.
    static let lookup = FixedLookup(table: [
        "89.160.20.112": "SE", "216.160.83.56": "US", "2002:59a0:1470::1": "JP", "2001:218::1": "JP",
    ])
    static let map: RegionMap = {
        var map = RegionMap.default
        map.privateRegion = "us-east"
        return map
    }()
    static let resolver = ClientAddressResolver(trusted: [CIDR("10.0.0.0/8")!, CIDR("fd00::/8")!])
    static let proxy = IPAddress("10.1.2.3")

    /// (X-Forwarded-For headers, the zone the origin must be in, whether by the `unknown` rule)
    static let cases: [([String], String, Bool)] = [
        (["89.160.20.112"], "eu", false),
        (["::ffff:89.160.20.112"], "eu", false),  // IPv4-mapped
        (["::ffff:59a0:1470"], "eu", false),  // IPv4-mapped, hex
        (["::89.160.20.112"], "eu", false),  // IPv4-compatible (deprecated): unwrapped
        (["2002:59a0:1470::1"], "eu", false),  // 6to4 wrapping SE: unwrapped, not the database's JP
        (["2002:d8a0:5338::1"], "us", false),  // 6to4 wrapping US
        (["2001:0:4136:e378:8000:63bf:a65f:eb8f"], "eu", false),  // Teredo, client SE (inverted)
        (["2001:0:4136:e378:8000:63bf:275f:acc7"], "us", false),  // Teredo, client US
        (["64:ff9b::59a0:1470"], "eu", false),  // NAT64 well-known prefix
        (["64:ff9b::216.160.83.56"], "us", false),
        (["64:ff9b:1::59a0:1470"], "eu", true),  // NAT64 local use: position unknowable
        (["2002:0a00:0001::1"], "eu", true),  // 6to4 wrapping 10.0.0.1
        (["2002:7f00:0001::"], "eu", true),  // 6to4 wrapping loopback
        (["2001:0:4136:e378:8000:63bf:f5ff:fffe"], "eu", true),  // Teredo wrapping 10.0.0.1
        (["64:ff9b::c0a8:0101"], "eu", true),  // NAT64 wrapping 192.168.1.1
        (["::10.0.0.1"], "eu", true),  // IPv4-compatible private
        (["89.160.20.112:51234"], "eu", true),  // ip:port (the us-east leak)
        (["[2a02:cf40::1]:443"], "eu", true),  // [v6]:port
        (["[2a02:cf40::1]"], "eu", true),  // brackets
        (["fe80::1%eth0"], "eu", true),  // zone suffix
        (["unknown"], "eu", true),  // RFC 7239 unknown
        (["_hidden"], "eu", true),  // RFC 7239 obfuscated identifier
        (["0x59.0xa0.20.112"], "eu", true),  // hex IPv4
        (["089.160.20.112"], "eu", true),  // leading zero (octal in inet_aton)
        (["0131.0240.024.0160"], "eu", true),  // octal
        (["1505760368"], "eu", true),  // one 32-bit number
        (["89.160.5232"], "eu", true),  // shortened
        (["216.160.83.56 89.160.20.112"], "eu", true),  // space-separated
        ([""], "eu", true),  // empty header
        (["216.160.83.56, "], "eu", true),  // empty rightmost hop
        (["192.168.1.1"], "eu", true),  // private: never the `private` rule through a proxy
        (["127.0.0.1"], "eu", true),
        (["fd00::1"], "eu", true),  // unique-local, and trusted: runs out of hops
        (["10.9.9.9"], "eu", true),  // only trusted hops
        (["8.8.8.8"], "eu", true),  // public, not in the database
        (["216.160.83.56", "89.160.20.112"], "eu", false),  // several headers: rightmost overall
        (["89.160.20.112", "garbage"], "eu", true),
        (["89.160.20.112", "216.160.83.56"], "us", false),
        (["216.160.83.56, 10.9.9.9"], "us", false),  // a trusted hop is skipped
        ([" 216.160.83.56\t"], "us", false),  // surrounding whitespace
    ]

    @Test("Every adversarial X-Forwarded-For resolves to its own zone or to unknown", arguments: Self.cases)
    func forwarded(headers: [String], zone: String, unknown: Bool) {
        let client = Self.resolver.resolve(peer: Self.proxy, forwardedFor: headers)
        let origin = OriginResolver(map: Self.map, lookup: Self.lookup).resolve(client)
        #expect(origin.zone == zone, "\(headers) → \(client) → \(origin)")
        #expect((origin.rule == .unknown) == unknown, "\(headers) → \(client) → \(origin)")
    }

    @Test(
        "Socket peers: transition addresses are unwrapped, a private embedded address is unknown",
        arguments: [
            ("2002:59a0:1470::1", "eu", Origin.Rule.database), ("2002:0a00:0001::1", "eu", .unknown),
            ("2001:0:4136:e378:8000:63bf:275f:acc7", "us", .database), ("192.168.1.1", "us", .private),
        ])
    func peers(peer: String, zone: String, rule: Origin.Rule) {
        let client = Self.resolver.resolve(peer: IPAddress(peer), forwardedFor: [])
        let origin = OriginResolver(map: Self.map, lookup: Self.lookup).resolve(client)
        #expect(origin.zone == zone && origin.rule == rule, "\(peer) → \(origin)")
    }

    @Test("A PROXY header's source inside the trusted range does not make X-Forwarded-For believed")
    func proxyProtocolDoesNotChain() {
        let client = Self.resolver.resolve(peer: Self.proxy, viaProxyProtocol: true, forwardedFor: ["216.160.83.56"])
        #expect(client == .peer(Self.proxy))
    }
}
