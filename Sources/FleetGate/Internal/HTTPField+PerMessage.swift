import HTTPTypes

extension HTTPField {
    /// A field whose value is this message's alone — a request id, a seed, a trace parent, a signed
    /// origin — kept out of the HPACK dynamic table and sent never indexed (`indexingStrategy`
    /// `.disallow`, which is what FleetHTTP2 sends for `.avoid` too: nghttp2 has no literal "without
    /// indexing" of its own; nothing is lost on a next hop, the values never repeat). Indexed, each
    /// such value evicts fields that repeat (the zone, the route), and makes every later field of its
    /// name a walk through all the table's entries of that name (issue #19: a refusal's head, ~100
    /// `memcmp`s).
    static func perMessage(_ name: HTTPField.Name, _ value: String) -> HTTPField {
        var field = HTTPField(name: name, value: value)
        field.indexingStrategy = .disallow
        return field
    }
}
