import FleetGeo
import Foundation

/// A gateway already running on this machine that `fleet-load run --target HOST:PORT` drives:
/// the harness then starts only its fleet, its central capacity and its clients. Loopback only —
/// the harness is a load generator and must not be pointed at anything else.
package struct HarnessTarget: Sendable, Hashable {
    /// A loopback address (`127.x.y.z`, `::1` or `localhost`).
    package var host: String
    package var clientPort: Int
    package var tunnelPort: Int
    package var adminPort: Int
    /// First port of the harness's central capacity (region i of the scenario's `central` at
    /// `centralPort + i`), which the gateway's `--central` flags must name; nil: none served.
    package var centralPort: Int?

    /// Parses `HOST:PORT` (`[::1]:PORT` for IPv6) and refuses any host that is not loopback.
    /// - Throws: ``HarnessError`` saying what was wrong.
    package init(_ text: String, tunnelPort: Int, adminPort: Int, centralPort: Int?) throws {
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[close...].dropFirst().drop { $0 == ":" }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            throw HarnessError("--target '\(text)': expected HOST:PORT, e.g. 127.0.0.1:8080")
        }
        guard let number = Int(port), (1...65_535).contains(number) else {
            throw HarnessError("--target '\(text)': '\(port)' is not a port (1–65535)")
        }
        let loopback = host == "localhost" || IPAddress(String(host)).map(Self.isLoopback) == true
        guard loopback else {
            throw HarnessError(
                "--target '\(text)': \(host) is not a loopback address; fleet-load drives only a gateway on this "
                    + "machine (127.0.0.0/8, ::1 or localhost)")
        }
        for (name, value) in [("--tunnel-port", tunnelPort), ("--admin-port", adminPort)]
        where !(1...65_535).contains(value) {
            throw HarnessError("\(name) \(value): not a port (1–65535)")
        }
        self.host = host == "localhost" ? "127.0.0.1" : String(host)
        self.clientPort = number
        self.tunnelPort = tunnelPort
        self.adminPort = adminPort
        self.centralPort = centralPort
    }

    static func isLoopback(_ address: IPAddress) -> Bool {
        CIDR("127.0.0.0/8")!.contains(address) || CIDR("::1/128")!.contains(address)
    }

    /// The pid of the process listening on `port` on this machine (from `/proc/net/tcp{,6}` and
    /// `/proc/PID/fd`), for CPU and RSS samples; nil when it cannot be found (another user's process).
    package static func listeningPID(port: Int) -> Int32? {
        var inodes = Set<String>()
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                // local_address is field 1 (HEX_IP:HEX_PORT), st field 3 (0A = LISTEN), inode field 9.
                guard fields.count > 9, fields[3] == "0A", let local = fields[1].split(separator: ":").last,
                    Int(local, radix: 16) == port
                else { continue }
                inodes.insert(String(fields[9]))
            }
        }
        guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for pid in pids.compactMap({ Int32($0) }) {
            guard let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") else { continue }
            for fd in fds {
                guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                    link.hasPrefix("socket:[")
                else { continue }
                if inodes.contains(String(link.dropFirst(8).dropLast())) { return pid }
            }
        }
        return nil
    }
}
