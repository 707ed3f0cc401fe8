import HTTPTypes

extension HTTPField {
    /// A field whose value is this message's alone — a request id, a seed, a trace parent — kept
    /// out of the HPACK dynamic table (`indexingStrategy` `.avoid`; FleetHTTP2 sends it never
    /// indexed). Indexed, each such value evicts fields that repeat (the zone, the route), and
    /// makes every later field of its name a walk through all the table's entries of that name
    /// (issue #19: a refusal's head, ~100 `memcmp`s).
    static func perMessage(_ name: HTTPField.Name, _ value: String) -> HTTPField {
        var field = HTTPField(name: name, value: value)
        field.indexingStrategy = .avoid
        return field
    }
}
