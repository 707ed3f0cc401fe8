import ArgumentParser
import FleetConfiguration
import FleetGate
import FleetGeo
import Foundation

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vehicle credentials.", subcommands: [Issue.self, TokenPseudonym.self])

    /// The fleet's credentials, keyed by its secret (`FLEETGATE_FLEET_SECRET` or `fleetSecretFile`).
    static func credentials() throws -> FleetCredentials {
        let stack = try ConfigStack(program: .fleetgate, schema: GatewayConfiguration.schema, arguments: [])
        guard let secret = try stack.read({ try $0.secret("fleetSecret", orFile: "fleetSecretFile") }) else {
            throw ValidationError("set FLEETGATE_FLEET_SECRET, or fleetSecretFile in fleetgate.yaml")
        }
        return try FleetCredentials(secret: secret)
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a vehicle token (uses FLEETGATE_FLEET_SECRET or fleetSecretFile).")
        @Option(help: "The vehicle id.") var vehicleID: String
        @Option(help: "A region the car may serve (repeatable).") var region: [String]
        @Option(help: "Validity in days (1–3650).") var days = 30

        func validate() throws {
            // helper-130: `--days 0` minted a token already expired, and exited 0.
            guard self.days >= 1 else {
                throw ValidationError("--days: at least 1 (a token for 0 days is already expired)")
            }
            // helper-137: `--days 99999999999` minted a token for 270 million years, and a larger number
            // crashed the command; a live tunnel's expiry is held for at most 10 years (CarSession.armExpiry).
            guard self.days <= 3650 else {
                throw ValidationError("--days: at most 3650 (10 years); issue a new token before it expires")
            }
            guard VehicleIdentity.isValidName(self.vehicleID) else {
                throw ValidationError(
                    "--vehicle-id '\(self.vehicleID)': use up to 128 letters, digits, '-', '_' or '.' (the gateway refuses others)"
                )
            }
        }

        func run() async throws {
            let credentials = try Token.credentials()
            print(
                credentials.issue(
                    vehicleID: self.vehicleID, regions: self.region,
                    expires: Date().addingTimeInterval(Double(self.days) * 86_400)))
        }
    }
}

struct Geo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "GeoIP tools.", subcommands: [Lookup.self])

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print country → region → zone for addresses.")
        @Argument(help: "IPv4 or IPv6 addresses.") var addresses: [String]
        @Option(help: "MaxMind DB (default: the one scripts/setup.sh builds).") var geoip: String?

        func run() async throws {
            let path = self.geoip ?? GatewayConfiguration.Geo.setupDatabase
            let database = try path.map { try MaxMindDatabase(path: $0) }
            let map = RegionMap.default
            let resolver = OriginResolver(map: map, lookup: database)
            if let database {
                print(
                    "database: \(database.path) (\(database.databaseType), built \(Date(timeIntervalSince1970: TimeInterval(database.buildEpoch))))"
                )
            } else {
                print("database: none (every public address follows the noDatabase rule)")
            }
            print("region map: \(map.version)")
            for text in self.addresses {
                guard let address = IPAddress(text) else { throw ValidationError("'\(text)' is not an IP address") }
                let origin = resolver.resolve(address)
                print(
                    "\(text) → country \(origin.country ?? "-") → region \(origin.region) → zone \(origin.zone) (rule: \(origin.rule.rawValue))"
                )
            }
        }
    }
}

struct Regions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Region map tools.", subcommands: [Check.self])

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate region map files; print every error as file:line:column and exit non-zero if any.")
        @Argument(help: "YAML files.") var files: [String]
        @Option(
            help: ArgumentHelp(
                "The map the gateway runs now: a region moved to another zone is an error, a removed one a warning.",
                discussion: "A reload refuses a region's move to another zone (only a restart moves one); "
                    + "a removed region's cars drain and are refused."))
        var against: String?

        func run() async throws {
            var failed = false
            let running = try self.against.map { try RegionMap.load(path: $0) }
            for file in self.files {
                do {
                    let map = try RegionMap.load(path: file)
                    var moved = false
                    if let running {
                        // helper-70: a map that moves a region passed this check and was refused at reload.
                        for change in running.zoneChanges(to: map) {
                            moved = true
                            // line:column, as the gateway's refusal says it (helper-131: the line alone).
                            let at = map.regions[change.region]?.zoneLocation.map { ":" + $0 } ?? ""
                            FileHandle.standardError.write(
                                Data(
                                    "\(file)\(at): key 'regions.\(change.region).zone': '\(change.to)': \(change): a reload refuses it; only a restart moves a region\n"
                                        .utf8))
                        }
                        for region in Set(running.regions.keys).subtracting(map.regions.keys).sorted() {
                            print("\(file): warning: region '\(region)' is removed: its cars drain and are refused")
                        }
                    }
                    // helper-73: `unknown` in a preferred zone sent addresses the database does not know (a
                    // new EU range) out of the strict zones, and the check said ok.
                    let strict = map.zones.values.filter { $0.residency == .strict }.map(\.id).sorted()
                    for (origin, region) in [("unknown", map.unknownRegion), ("noDatabase", map.noDatabaseRegion)] {
                        guard !strict.isEmpty, let zone = map.regions[region]?.zone,
                            map.zones[zone]?.residency != .strict
                        else { continue }
                        print(
                            "\(file): warning: origins.\(origin) is region '\(region)' in zone '\(zone)', which is not strict: an address the database cannot place is served outside the strict zones (\(strict.joined(separator: ", ")))"
                        )
                    }
                    // helper-99: "ok" was printed after the error above, and a CI step reading stdout shipped the map.
                    guard !moved else {
                        failed = true
                        continue
                    }
                    print(
                        "\(file): ok (version \(map.version), \(map.zones.count) zones, \(map.regions.count) regions)")
                } catch {
                    failed = true
                    FileHandle.standardError.write(Data((error.description + "\n").utf8))
                }
            }
            if failed { throw ExitCode(1) }
        }
    }
}
