/// Environment variables with the program's prefix that name no key.
///
/// A misspelt flag or file key is an error, but a misspelt `FLEETGATE_*` variable used to be ignored in
/// silence: the operator's `FLEETGATE_LIMITS_MAX_BODY_BYTE=4096` did nothing. Unknown variables are
/// warnings, not errors, because the environment is shared: Kubernetes puts `FLEETGATE_CLIENT_SERVICE_HOST`
/// and friends into every pod of a namespace with a `fleetgate-client` service, and the test and load
/// tools read a few variables of their own. Both are skipped.
extension ConfigStack {
    /// Variables the tools read (`FLEETGATE_PYTHON`, …), beside the `_CONFIG` the stack reads itself.
    static let toolVariables: Set<String> = [
        "CONFIG", "CACHE", "PYTHON", "MODEL", "BINARY", "FUZZ_MMDB", "PRINT_RSS",
    ]

    /// One warning per variable with the program's prefix that is not a key, with the closest key's
    /// variable when one is near, sorted by name.
    public func unknownEnvironmentWarnings() -> [String] {
        let prefix = self.program.environmentPrefix + "_"
        let known = Set(self.schema.keys.map { $0.environmentVariable(prefix: self.program.environmentPrefix) })
        var warnings: [String] = []
        for name in self.environment.keys.sorted() where name.hasPrefix(prefix) && !known.contains(name) {
            let rest = String(name.dropFirst(prefix.count))
            if Self.toolVariables.contains(rest) || Self.isServiceLink(rest, value: self.environment[name] ?? "") {
                continue
            }
            let close = known.min { editDistance($0, name) < editDistance($1, name) }
            let hint = close.flatMap { editDistance($0, name) <= 3 ? "; did you mean \($0)?" : nil } ?? ""
            warnings.append(
                "environment variable \(name) is not a setting and is ignored\(hint) (`config keys` lists them)"
            )
        }
        return warnings
    }

    /// Kubernetes service links for a service `<prefix>-x`: `X_SERVICE_HOST`, `X_SERVICE_PORT[_NAME]`,
    /// `X_PORT=tcp://…`, `X_PORT_443_TCP[_PROTO|_PORT|_ADDR]`.
    static func isServiceLink(_ rest: String, value: String) -> Bool {
        let parts = rest.split(separator: "_")
        for index in parts.indices.dropLast() {
            let next = parts[index + 1]
            if parts[index] == "SERVICE", next == "HOST" || next == "PORT" { return true }
            if parts[index] == "PORT", next.allSatisfy(\.isNumber), index + 2 < parts.count,
                ["TCP", "UDP", "SCTP"].contains(parts[index + 2])
            {
                return true
            }
        }
        return parts.last == "PORT" && value.contains("://")
    }
}
