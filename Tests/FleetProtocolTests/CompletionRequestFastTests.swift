import FleetProtocol
import Foundation
import NIOCore
import Testing

/// The fast request decoder against `JSONDecoder`: whatever the fast path accepts, `JSONDecoder`
/// accepts with the same result; what it cannot decode exactly, it leaves to `JSONDecoder`.
@Suite("Fast request decoding")
struct CompletionRequestFastTests {
    static let common: [String] = [
        #"{"model":"fleet-8b","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"hello"}]}"#,
        #"{ "model" : "fleet-8b" , "messages" : [ { "role" : "system" , "content" : "Be brief.\nVery." } , {"role":"user","content":"Say \"hi\" \\ / \/ \t done"} ] }"#,
        #"{"model":"m","prompt":"Once upon","max_tokens":8,"temperature":0.7,"top_p":1,"seed":-3,"n":1,"stop":["\n","END"],"user":"u1"}"#,
        #"{"model":"m","messages":[{"role":"assistant","content":null,"name":"x"}],"stream":false,"stream_options":{"include_usage":true,"other":[1,{"a":2}]}}"#,
        #"{"model":"m","messages":[],"stop":"x","presence_penalty":-0.5,"frequency_penalty":2e-1,"max_completion_tokens":100,"metadata":{"k":"v"}}"#,
        #"{"model":"m","messages":[{"role":"user","content":"é漢字🙂"}],"temperature":null,"stream_options":null,"stop":null}"#,
        #"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{}}"#,
    ]

    /// Given to `JSONDecoder` only (the fast path gives up) — and still decoded right.
    static let leftToFoundation: [String] = [
        #"{"model":"m","messages":[{"role":"user","content":"caf\u00e9"}]}"#,
        #"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#,
        #"{"model":"m","model":"n"}"#,
        #"{"model":"m","tools":[]}"#,
        #"{"model":"m","logprobs":true}"#,
        #"{"model":"m","max_tokens":32.0}"#,
        #"{"model":"m","max_tokens":1e2}"#,
        #"{"messages":[]}"#,
        #"{"model":"m","messages":[{"role":"user"}]}"#,
        #"{"model":"m","messages":[{"content":null,"role":"user"}]}"#,  // JSONDecoder's 400
        #"{"model":"m","stream":1}"#,
        #"{"model":"m"} x"#,
        #"["model"]"#,
        #"{"model":"m","max_tokens":99999999999999999999}"#,
        #"{"model":"m","temperature":1e-400}"#,
        // An earlier turn's function calling: the validator reads the calls and their answers.
        #"{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","content":"ok","tool_call_id":"c1"}]}"#,
        #"{"model":"m","messages":[{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{}"}}]}"#,
    ]

    private func foundation(_ text: String) -> CompletionRequest? {
        try? JSONDecoder().decode(CompletionRequest.self, from: Data(text.utf8))
    }

    @Test("The usual request takes the fast path and equals JSONDecoder's", arguments: Self.common)
    func fastPath(text: String) throws {
        let fast = try #require(CompletionRequest.fastDecode(ByteBuffer(string: text)), "fast path gave up")
        #expect(fast == self.foundation(text))
    }

    @Test("What the fast path cannot match exactly is left to JSONDecoder", arguments: Self.leftToFoundation)
    func gaveUp(text: String) {
        #expect(CompletionRequest.fastDecode(ByteBuffer(string: text)) == nil)
    }

    @Test("JSONDecoder reads a history's tool calls and the ids their answers name")
    func toolTurns() throws {
        let request = try #require(self.foundation(Self.leftToFoundation[Self.leftToFoundation.count - 2]))
        let messages = try #require(request.messages)
        #expect(messages[0].toolCalls?.first?.id == "c1" && messages[0].toolCalls?.first?.function?.name == "f")
        #expect(messages[1].toolCallID == "c1")
    }

    @Test("Random mutations: the fast path never accepts what JSONDecoder refuses, and agrees when both accept")
    func mutations() {
        var random = SplitMix64(seed: 20261202)
        let alphabet = Array(#"{}[]",:0123456789.-+eE truefalsenull\"\\/u"#.utf8) + [0x0A, 0xC3, 0xA9, 0xFF]
        var fastAccepted = 0
        for round in 0..<6_000 {
            var bytes = Array(Self.common[round % Self.common.count].utf8)
            for _ in 0..<(1 + Int(random.next() % 3)) {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[at] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                case 1: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: at)
                default: if bytes.count > 1 { bytes.remove(at: at) }
                }
            }
            guard let fast = CompletionRequest.fastDecode(ByteBuffer(bytes: bytes)) else { continue }
            fastAccepted += 1
            let reference = try? JSONDecoder().decode(CompletionRequest.self, from: Data(bytes))
            #expect(reference == fast, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(fastAccepted > 500, "the mutations should leave many bodies the fast path decodes")
    }
}
