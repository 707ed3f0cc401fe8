import ArgumentParser
import FleetConfiguration
import FleetGate
import Foundation

/// `fleetgate token pseudonym`: vehicle ids to the pseudonyms logs, `/admin/cars` and `x-fleet-vehicle`
/// show, so an operator can name the car behind one (helper-131: a failing car's pseudonym led nowhere,
/// and `pki revoke` takes the vehicle id). A pseudonym is an HMAC of the id keyed by the fleet secret and
/// the UTC day the car connected, so it is found forward, from a list of the fleet's ids, never reversed.
struct TokenPseudonym: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pseudonym",
        abstract:
            "Print vehicle ids' pseudonyms, or find the id behind one (uses FLEETGATE_FLEET_SECRET or fleetSecretFile).",
        discussion: """
            A car keeps the pseudonym of the UTC day its tunnel connected until it reconnects, so --find looks
            back --days days. Examples:
              fleetgate token pseudonym --vehicle-id VIN123
              fleetgate token pseudonym --vehicles fleet-ids.txt --find v-3d7c648df02b383d
            """)

    @Option(help: "A vehicle id (repeatable).") var vehicleID: [String] = []
    @Option(help: "A file of vehicle ids, one a line ('-': standard input).") var vehicles: String?
    @Option(help: "Print only the vehicle id behind this pseudonym (exit 1 when none of the ids has it).")
    var find: String?
    @Option(help: "Days back, today included, that --find looks at (a car connected days ago keeps that day's).")
    var days = 7

    func validate() throws {
        guard (1...366).contains(self.days) else { throw ValidationError("--days: from 1 to 366") }
        guard !self.vehicleID.isEmpty || self.vehicles != nil else {
            throw ValidationError("give vehicle ids: --vehicle-id ID (repeatable) or --vehicles FILE")
        }
    }

    func run() async throws {
        let credentials = try Token.credentials()
        var ids = self.vehicleID
        if let vehicles = self.vehicles {
            let text =
                vehicles == "-"
                ? String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                : try String(contentsOfFile: vehicles, encoding: .utf8)
            ids += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        let now = Date()
        guard let wanted = self.find else {
            for id in ids { print("\(credentials.pseudonym(of: id, now: now)) \(id)") }
            return
        }
        for back in 0..<self.days {
            let day = now.addingTimeInterval(-Double(back) * 86_400)
            if let id = ids.first(where: { credentials.pseudonym(of: $0, now: day) == wanted }) {
                // The id alone on standard output, for `$(…)` into `pki revoke` (helper-133); the day aside.
                let date = ISO8601DateFormatter.string(from: day, timeZone: .gmt, formatOptions: [.withFullDate])
                print(id)
                FileHandle.standardError.write(Data("\(id): the pseudonym of \(date) UTC\n".utf8))
                return
            }
        }
        FileHandle.standardError.write(
            Data("none of the \(ids.count) vehicle ids has pseudonym \(wanted) in the last \(self.days) days\n".utf8))
        throw ExitCode(1)
    }
}
