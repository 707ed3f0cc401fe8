import FleetGeo
import Foundation

/// Target `origin`: where a request comes from. The input is text: the first line is the
/// connection's peer address (prefixed `proxy ` when a PROXY protocol header carried it), every
/// further line one `X-Forwarded-For` field value. They go through the gateway's
/// ``ClientAddressResolver`` (trusting ``trusted``) and ``OriginResolver`` (the default region map
/// and the MaxMind test database), and every line is also parsed as an address and a CIDR block.
///
/// Invariants beyond "no crash":
/// - `X-Forwarded-For` changes nothing unless the socket peer is a trusted proxy;
/// - a forwarded client address came from a hop that is a plain address (digits, hex, `.`, `:`);
/// - an unusable hop gives the `unknown` rule; every origin names a declared region and its zone;
///   a database origin's country maps to that region;
/// - an address prints as text that parses back to it; a block contains its own address.
enum OriginFuzz {
    static let trusted = ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32", "127.0.0.1"].compactMap(CIDR.init)
    static let resolver = ClientAddressResolver(trusted: Self.trusted)
    static let database: MaxMindDatabase? = {
        let path =
            ProcessInfo.processInfo.environment["FLEETGATE_FUZZ_MMDB"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
                "../../../../Tests/FleetGeoTests/Fixtures/GeoIP2-Country-Test.mmdb"
            ).standardizedFileURL.path
        do { return try MaxMindDatabase(path: path) } catch { fatalError("The fuzz GeoIP database: \(error)") }
    }()
    static let origins = OriginResolver(map: .default, lookup: Self.database)

    static let plain = Set("0123456789abcdefABCDEF.:".utf8)

    static func run(_ bytes: [UInt8]) throws(FuzzFinding) {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var first = lines.isEmpty ? "" : lines.removeFirst()
        let viaProxyProtocol = first.hasPrefix("proxy ")
        if viaProxyProtocol { first.removeFirst(6) }
        for line in [first] + lines {
            try Self.checkParsers(line)
            for hop in line.split(separator: ",") { try Self.checkParsers(String(hop)) }
        }
        let peer = IPAddress(first)
        let client = Self.resolver.resolve(peer: peer, viaProxyProtocol: viaProxyProtocol, forwardedFor: lines)
        if peer == nil || viaProxyProtocol || !Self.resolver.isTrusted(peer!) || lines.isEmpty {
            try check(client == .peer(peer), "X-Forwarded-For believed from an untrusted or PROXY-protocol peer")
        }
        if case .forwarded(let address) = client {
            let hops = lines.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
                .map { $0.trimmingCharacters(in: .whitespaces) }
            try check(
                hops.contains { hop in IPAddress(hop) == address && hop.utf8.allSatisfy(Self.plain.contains) },
                "the client address \(address) came from a hop that is not a plain address")
        }
        let origin = Self.origins.resolve(client)
        guard let region = Self.origins.map.regions[origin.region] else {
            throw FuzzFinding("the origin names the undeclared region '\(origin.region)'")
        }
        try check(region.zone == origin.zone, "the origin's zone is not its region's")
        if client == .unusable { try check(origin.rule == .unknown, "an unusable hop did not give the unknown rule") }
        if origin.rule == .database {
            guard let country = origin.country else { throw FuzzFinding("a database origin without a country") }
            try check(Self.origins.map.region(forCountry: country)?.id == origin.region, "the country maps elsewhere")
        }
    }

    static func checkParsers(_ text: String) throws(FuzzFinding) {
        if let address = IPAddress(text) {
            try check(IPAddress(address.description) == address, "\(address) does not parse back")
            _ = try? Self.database?.lookup(address)
        }
        if let block = CIDR(text) {
            try check(block.contains(block.address), "the block \(block) does not contain its own address")
        }
    }
}
