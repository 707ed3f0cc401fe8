package import Yams

/// Why and where a YAML text failed to parse, without the text itself.
///
/// Yams's own errors either quote the line or, for a key written twice, carry the whole file: a 5 MB
/// map with a duplicate key made a 5 MB error, log line and 422 body. This keeps the position (1-based;
/// 0 when the parser gave none) and a one-line reason, for the file:line:column errors of the config
/// file, the region map and the key file.
package struct YAMLSyntaxError: Error, Sendable, CustomStringConvertible {
    /// The 1-based line of the problem, or 0.
    package var line: Int
    /// The 1-based column of the problem, or 0.
    package var column: Int
    /// The reason, one line, without the file's text.
    package var message: String

    package init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// Parses `yaml` into its node tree (nil for an empty text).
    /// - Throws: ``YAMLSyntaxError``.
    package static func compose(_ yaml: String) throws(YAMLSyntaxError) -> Node? {
        do { return try Yams.compose(yaml: yaml) } catch { throw YAMLSyntaxError(error) }
    }

    /// Translates an error thrown by Yams.
    package init(_ error: any Error) {
        guard let error = error as? YamlError else {
            self.init(line: 0, column: 0, message: Self.oneLine("\(error)"))
            return
        }
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            self.init(line: mark.line, column: mark.column, message: Self.oneLine(problem + during))
        case .reader(let problem, let offset, _, let yaml):
            let (line, column) = offset.map { Self.position(ofUTF8Offset: $0, in: yaml) } ?? (0, 0)
            self.init(line: line, column: column, message: Self.oneLine(problem))
        case .duplicatedKeysInMapping(let duplicates, let context):
            let first = context.mark
            let name = duplicates.first ?? "?"
            if let second = Self.repeatedKey(name, after: first, in: context.text) {
                self.init(
                    line: second.line, column: second.column,
                    message: Self.oneLine("key '\(name)' appears twice in one mapping; first at line \(first.line)"))
            } else {
                self.init(
                    line: first.line, column: first.column,
                    message: Self.oneLine("key '\(name)' appears more than once in this mapping"))
            }
        default:
            self.init(line: 0, column: 0, message: Self.oneLine("\(error)"))
        }
    }

    package var description: String { "line \(self.line), column \(self.column): \(self.message)" }

    /// At most 200 characters on one line: a reason must not carry a file's worth of text.
    static func oneLine(_ text: String) -> String {
        let flat = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return flat.count > 200 ? String(flat.prefix(200)) + "…" : flat
    }

    /// The 1-based line and column of a UTF-8 byte offset.
    static func position(ofUTF8Offset offset: Int, in text: String) -> (line: Int, column: Int) {
        var line = 1
        var column = 1
        for byte in text.utf8.prefix(offset) {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return (line, column)
    }

    /// The next line after `first` that starts with `name:` at the same column, before the mapping ends:
    /// in a block mapping the keys of one mapping share their column. Nil when none does (a flow mapping,
    /// a quoted key), and the error then points at the first.
    static func repeatedKey(_ name: String, after first: Mark, in yaml: String) -> (line: Int, column: Int)? {
        var number = 0
        // By `isNewline`: "\r\n" is one Character, so a split on "\n" left a CRLF file one line.
        for line in yaml.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            number += 1
            guard number > first.line else { continue }
            let indent = line.prefix(while: { $0 == " " }).count
            let rest = line.dropFirst(indent)
            if rest.isEmpty || rest.hasPrefix("#") { continue }
            if indent + 1 < first.column { return nil }  // a parent key or the next list item: the mapping ended
            guard indent + 1 == first.column else { continue }
            if rest.hasPrefix(name), rest.dropFirst(name.count).drop(while: { $0 == " " }).hasPrefix(":") {
                return (number, first.column)
            }
        }
        return nil
    }
}
