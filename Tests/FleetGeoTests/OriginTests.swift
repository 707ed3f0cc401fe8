import FleetGeo
import Testing

struct FixedLookup: CountryLookup {
    let table: [String: String]
    func country(of address: IPAddress) -> String? { self.table[address.description] }
}

@Suite("Origins, zones and client addresses")
struct OriginTests {
    @Test(
        "Addresses parse in every form; IPv4-mapped IPv6 equals its IPv4",
        arguments: [
            ("81.2.69.142", "81.2.69.142"), ("::ffff:81.2.69.142", "81.2.69.142"), ("[2001:db8::1]", "2001:db8::1"),
            ("fe80::1%eth0", "fe80::1"),
        ])
    func parse(text: String, expected: String) throws {
        #expect(try #require(IPAddress(text)).description == expected)
    }

    @Test("Garbage is not an address", arguments: ["", "1.2.3", "999.1.1.1", "hello", "1.2.3.4.5"])
    func garbage(text: String) { #expect(IPAddress(text) == nil) }

    @Test(
        "Private and loopback addresses follow the private rule",
        arguments: ["127.0.0.1", "10.0.0.1", "192.168.1.1", "::1", "fd00::1", "169.254.1.1"])
    func privateRule(text: String) {
        let resolver = OriginResolver(map: .default, lookup: FixedLookup(table: [:]))
        #expect(resolver.resolve(IPAddress(text)).rule == .private)
    }

    @Test(
        "Country → region → zone, with NO in the EEA zone and GB and CH in zones of their own",
        arguments: [
            ("89.160.20.112", "SE", "eu-north", "eu"), ("2a02:cf40::1", "NO", "eu-north", "eu"),
            ("81.2.69.142", "GB", "gb", "gb"), ("2a02:d000::1", "CH", "ch", "ch"),
            ("216.160.83.56", "US", "us-east", "us"),
        ])
    func zones(ip: String, country: String, region: String, zone: String) {
        let resolver = OriginResolver(map: .default, lookup: FixedLookup(table: [ip: country]))
        let origin = resolver.resolve(IPAddress(ip))
        #expect(origin.country == country && origin.region == region && origin.zone == zone && origin.rule == .database)
        #expect(origin.spills == (zone == "us"), "only a preferred zone spills")
    }

    @Test("A public address not in the database follows the unknown rule (the strictest zone)")
    func unknown() {
        let origin = OriginResolver(map: .default, lookup: FixedLookup(table: [:])).resolve(IPAddress("8.8.8.8"))
        #expect(origin.rule == .unknown && origin.zone == "eu" && !origin.spills)
        // The mark follows the map the resolver holds, also when it is replaced.
        var resolver = OriginResolver(map: .default, lookup: nil)
        resolver.map.zones["eu"]?.residency = .preferred
        #expect(resolver.resolve(IPAddress("8.8.8.8")).spills)
    }

    @Test("Without a database, the noDatabase rule applies")
    func noDatabase() {
        #expect(OriginResolver(map: .default, lookup: nil).resolve(IPAddress("8.8.8.8")).rule == .noDatabase)
    }

    @Test("X-Forwarded-For is believed only from trusted proxies, walking right to left")
    func forwarded() throws {
        let resolver = ClientAddressResolver(trusted: [
            try #require(CIDR("10.0.0.0/8")), try #require(CIDR("fd00::/8")),
        ])
        let proxy = IPAddress("10.1.2.3"), stranger = IPAddress("203.0.113.9")
        let se = try #require(IPAddress("89.160.20.112"))
        #expect(resolver.resolve(peer: stranger, forwardedFor: ["89.160.20.112"]) == .peer(stranger))
        #expect(resolver.resolve(peer: proxy, forwardedFor: ["1.1.1.1, 89.160.20.112"]) == .forwarded(se))
        #expect(resolver.resolve(peer: proxy, forwardedFor: ["89.160.20.112, 10.9.9.9"]) == .forwarded(se))
        #expect(resolver.resolve(peer: proxy, forwardedFor: ["garbage"]) == .unusable)
    }

    @Test(
        "CIDR blocks contain what they should",
        arguments: [
            ("10.0.0.0/8", "10.255.0.1", true), ("10.0.0.0/8", "11.0.0.1", false),
            ("192.168.0.0/23", "192.168.1.7", true),
            ("192.168.0.0/23", "192.168.2.7", false), ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("0.0.0.0/0", "8.8.8.8", true),
        ])
    func cidr(block: String, ip: String, inside: Bool) throws {
        #expect(try #require(CIDR(block)).contains(try #require(IPAddress(ip))) == inside)
    }

    @Test(
        "Text that is not a block is refused, never a trap (#20: the origin fuzzer)",
        arguments: ["", "/", "//", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/x", "x/8"])
    func notABlock(text: String) {
        #expect(CIDR(text) == nil)
    }

    @Test("An address with a NUL inside is refused, not cut at the NUL (#20: the origin fuzzer)")
    func embeddedNUL() {
        #expect(IPAddress("::50\u{0}5") == nil)
        #expect(IPAddress("1.2.3.4\u{0}evil") == nil)
        let resolver = ClientAddressResolver(trusted: [CIDR("10.0.0.0/8")!])
        #expect(resolver.resolve(peer: IPAddress("10.0.0.1"), forwardedFor: ["81.2.69.142\u{0}"]) == .unusable)
    }
}
