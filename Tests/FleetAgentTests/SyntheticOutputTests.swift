import Foundation
import Testing

@testable import FleetAgent
@testable import FleetProtocol

@Suite("Synthetic cars' function calls and JSON (helper-127)")
struct SyntheticOutputTests {
    static func json(_ text: String) throws -> JSONValue {
        try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
    }

    static let weather: JSONValue = try! Self.json(
        #"{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}"#
    )
    static let time: JSONValue = try! Self.json(#"{"type":"function","function":{"name":"time"}}"#)

    static func request(
        tools: [JSONValue]? = [weather, time], choice: JSONValue? = nil, lastRole: String = "user",
        format: String? = nil
    ) throws -> CompletionRequest {
        var request = CompletionRequest(model: "m", messages: [ChatMessage(role: "user", content: "hi")])
        if lastRole != "user" { request.messages!.append(ChatMessage(role: lastRole, content: "sunny")) }
        request.tools = tools.map { .array($0) }
        request.toolChoice = choice
        request.responseFormat = try format.map { try Self.json($0) }
        return request
    }

    @Test("Which output: a call while tools are to be called, prose after a tool's result, JSON as the format asks")
    func choice() throws {
        func name(_ output: SyntheticOutput) -> String? {
            if case .toolCall(let name, _) = output { name } else { nil }
        }
        // `auto` and no choice: a call, the function chosen by the seed; after a tool's result, prose.
        #expect(name(SyntheticOutput.of(try Self.request(), seed: 0)) == "weather")
        #expect(name(SyntheticOutput.of(try Self.request(), seed: 1)) == "time")
        #expect(name(SyntheticOutput.of(try Self.request(choice: .string("auto")), seed: 0)) == "weather")
        #expect(SyntheticOutput.of(try Self.request(lastRole: "tool"), seed: 0) == .text)
        #expect(
            name(SyntheticOutput.of(try Self.request(choice: .string("required"), lastRole: "tool"), seed: 0)) != nil)
        #expect(SyntheticOutput.of(try Self.request(choice: .string("none")), seed: 0) == .text)
        let named = try Self.json(#"{"type":"function","function":{"name":"time"}}"#)
        #expect(name(SyntheticOutput.of(try Self.request(choice: named), seed: 0)) == "time")
        #expect(SyntheticOutput.of(try Self.request(tools: nil), seed: 0) == .text)
        // A function without parameters is called with `{}`.
        #expect(
            SyntheticOutput.of(try Self.request(choice: named), seed: 0) == .toolCall(name: "time", arguments: "{}"))
        // JSON: an object for `json_object`; the schema's instance for `json_schema`; none for a legacy completion.
        guard
            case .json(let loose) = SyntheticOutput.of(
                try Self.request(tools: nil, format: #"{"type":"json_object"}"#), seed: 3)
        else { Issue.record("no JSON"); return }
        guard case .object(let fields) = try Self.json(loose), case .string? = fields["answer"] else {
            Issue.record("\(loose)")
            return
        }
        var legacy = try Self.request(format: #"{"type":"json_object"}"#)
        legacy.messages = nil
        legacy.prompt = "hi"
        #expect(SyntheticOutput.of(legacy, seed: 0) == .text)
        // Pieces: whole characters of about four bytes, the text again when joined.
        let output = SyntheticOutput.json(#"{"é":"ñandú 🚗 road"}"#)
        #expect(output.pieces.joined() == #"{"é":"ñandú 🚗 road"}"#)
        #expect(output.pieces.allSatisfy { $0.utf8.count >= 4 || $0 == output.pieces.last })
    }

    @Test("A schema's instance: types, bounds, enum, const, formats, local refs, nullable types")
    func instance() throws {
        let schema = try Self.json(
            #"""
            {"type":"object","$defs":{"point":{"type":"object","properties":{"x":{"type":"number","minimum":-5,"maximum":-5}}}},
             "properties":{"n":{"type":"integer","minimum":3,"maximum":4},"b":{"type":"boolean"},
               "e":{"enum":["a","b"]},"c":{"const":{"k":1}},"d":{"type":"string","format":"date"},
               "s":{"type":"string","minLength":30,"maxLength":40},"p":{"$ref":"#/$defs/point"},
               "o":{"type":["null","string"]},"l":{"type":"array","items":{"type":"integer"},"minItems":2},
               "any":{"anyOf":[{"type":"integer","minimum":9,"maximum":9},{"type":"string"}]}}}
            """#)
        for seed: UInt64 in [0, 1, 2, 99] {
            var maker = SyntheticJSON(root: schema, seed: seed)
            guard case .object(let v) = maker.instance(of: schema) else {
                Issue.record("not an object")
                return
            }
            #expect(v["n"] == .number(3) || v["n"] == .number(4), "\(v)")
            if case .bool? = v["b"] {} else { Issue.record("b: \(String(describing: v["b"]))") }
            #expect(v["e"] == .string("a") || v["e"] == .string("b"))
            #expect(v["c"] == .object(["k": .number(1)]))
            #expect(v["d"] == .string("2026-12-07"))
            if case .string(let s)? = v["s"] { #expect((30...40).contains(s.count), "\(s)") } else { Issue.record("s") }
            #expect(v["p"] == .object(["x": .number(-5)]))
            if case .string? = v["o"] {} else { Issue.record("o: \(String(describing: v["o"]))") }
            if case .array(let items)? = v["l"] { #expect(items.count == 2) } else { Issue.record("l") }
            #expect(v["any"] == .number(9))
        }
    }

    @Test("A schema that refers to itself many times over is cut: bounded work, values past the budget null")
    func recursiveSchemaBounded() throws {
        // Ten properties that are each the whole schema: 10⁸ values to depth 8 without the budget.
        let properties = (0..<10).map { ##""p\##($0)":{"$ref":"#"}"## }.joined(separator: ",")
        let schema = try Self.json(#"{"type":"object","properties":{\#(properties)}}"#)
        var maker = SyntheticJSON(root: schema, seed: 7)
        let text = JSON.string(maker.instance(of: schema))
        #expect(text.utf8.count < 200_000, "\(text.utf8.count) bytes")
        #expect(text.contains("null"))
        // Many items asked for: at most 16.
        let many = try Self.json(#"{"type":"array","items":{"type":"integer"},"minItems":100000}"#)
        var items = SyntheticJSON(root: many, seed: 1)
        if case .array(let values) = items.instance(of: many) { #expect(values.count == 16) }
    }

    @Test(
        "Hostile schemas are cut at about 64 KiB of output: many properties referring to the root, long strings, a large const"
    )
    func hostileSchemasBounded() throws {
        // helper-129: 40,000 properties that each are the whole schema (~1 MB of request) were 573 MB of JSON;
        // 20,000 here.
        let many = (0..<20_000).map { ##""p\##($0)":{"$ref":"#"}"## }.joined(separator: ",")
        let wide = try Self.json(#"{"type":"object","properties":{\#(many)}}"#)
        // Strings of minLength 10,000 in nested arrays of 16; a const of 100 KB referred to from every item.
        let long = try Self.json(
            #"{"type":"array","minItems":16,"items":{"type":"array","minItems":16,"items":{"type":"string","minLength":10000}}}"#
        )
        let big = String(repeating: "x", count: 100_000)
        let constant = try Self.json(
            ##"{"type":"array","minItems":16,"items":{"$ref":"#/$defs/c"},"$defs":{"c":{"const":"\##(big)"}}}"##)
        for (name, schema) in [("wide", wide), ("long", long), ("constant", constant)] {
            var maker = SyntheticJSON(root: schema, seed: 3)
            let text = JSON.string(maker.instance(of: schema))
            #expect(text.utf8.count < 80 * 1024, "\(name): \(text.utf8.count) bytes")
        }
        // Bounds the earlier cut missed: no items when at most 0; a number inside exclusive bounds.
        let none = try Self.json(#"{"type":"array","maxItems":0,"items":{"type":"integer"}}"#)
        var noneMaker = SyntheticJSON(root: none, seed: 1)
        #expect(noneMaker.instance(of: none) == .array([]))
        let half = try Self.json(#"{"type":"number","exclusiveMinimum":0.5,"maximum":1}"#)
        var halfMaker = SyntheticJSON(root: half, seed: 1)
        if case .number(let n) = halfMaker.instance(of: half) {
            #expect(n > 0.5 && n <= 1, "\(n)")
        } else {
            Issue.record("not a number")
        }
    }

}
