import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

/// The Responses API as a view of the relay: chat chunks in, Responses events out.
@Suite("ResponsesRenderer")
struct ResponsesRendererTests {
    static let template: ResponseObject = {
        var response = ResponseObject(id: "resp_abc", createdAt: 1_700_000_000, model: "fleet-8b")
        response.metadata = ["ticket": "42"]
        response.maxOutputTokens = 3
        return response
    }()

    /// A relay driven as the dispatcher drives it, rendering `/v1/responses`.
    /// - Parameter choices: as the relay is configured; the Responses API asks for one, and a second from
    ///   an upstream is then an upstream fault — more only to reach the renderer with them.
    static func driver(streaming: Bool = true, maxTokens: Int? = nil, choices: Int = 1) -> RelayDriver {
        var driver = RelayDriver(streaming: streaming, maxTokens: maxTokens)
        var configuration = SSERelay.Configuration(
            streaming: streaming, includeUsage: false, chat: true, maxOutputTokens: maxTokens,
            fallbackID: "unused", responses: Self.template)
        configuration.choices = choices
        driver.relay = SSERelay(configuration: configuration)
        return driver
    }

    /// The client's events: (the `event:` line, the decoded `data:`).
    static func events(_ client: String) throws -> [(name: String, event: ResponseEvent)] {
        try client.components(separatedBy: "\n\n").dropLast().map { block in
            let lines = block.components(separatedBy: "\n")
            try #require(lines.count == 2 && lines[0].hasPrefix("event: ") && lines[1].hasPrefix("data: "), "\(block)")
            let event = try JSONDecoder().decode(ResponseEvent.self, from: Data(lines[1].dropFirst(6).utf8))
            return (String(lines[0].dropFirst(7)), event)
        }
    }

    @Test("A stream: created … deltas … completed, numbered from 0, with the text and usage the relay counted")
    func streamed() throws {
        var d = Self.driver()
        _ = d.feed(chunk("chatcmpl-1", role: true), from: 1)
        #expect(d.client.isEmpty, "nothing before the first token: a retry stays invisible")
        _ = d.feed(chunk("chatcmpl-1", content: "Hel") + chunk("chatcmpl-1", content: "lo \"car\""), from: 1)
        _ = d.feed(chunk("chatcmpl-1", finish: "stop") + usageChunk + "data: [DONE]\n\n", from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(
            events.map(\.name) == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done",
                "response.completed",
            ])
        #expect(events.map(\.event.type) == events.map(\.name))
        #expect(events.map(\.event.sequenceNumber) == Array(0..<events.count))
        #expect(events.compactMap(\.event.delta).joined() == "Hello \"car\"")
        #expect(events[6].event.text == "Hello \"car\"")
        #expect(Set(events.compactMap(\.event.itemID)) == ["msg_abc"])
        #expect(!d.client.contains("[DONE]"))
        let created = try #require(events[0].event.response)
        #expect(created.status == "in_progress" && created.output.isEmpty && created.usage == nil)
        let completed = try #require(events.last?.event.response)
        #expect(completed.id == "resp_abc" && completed.status == "completed")
        #expect(completed.metadata == ["ticket": "42"])
        #expect(completed.output.first?.message?.content.first?.text == "Hello \"car\"")
        #expect(completed.usage.map { [$0.inputTokens, $0.outputTokens, $0.totalTokens] } == [5, 2, 7])
    }

    /// A reasoning model's thinking (`reasoning_content`, from a car's runtime or central) was dropped:
    /// the Responses client saw nothing of it, and nothing at all while the model thought.
    @Test("Thinking before the text: a reasoning item (output 0) streamed and closed, then the message (output 1)")
    func reasoning() throws {
        func thinking(_ text: String) -> String {
            #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"\#(text)"},"finish_reason":null}]}"#
                + "\n\n"
        }
        var d = Self.driver()
        _ = d.feed(chunk("c", role: true) + thinking("Let me") + thinking(" think."), from: 1)
        _ = d.feed(
            chunk("c", content: "Hi") + thinking("late") + chunk("c", finish: "stop") + "data: [DONE]\n\n", from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(
            events.map(\.name) == [
                "response.created", "response.in_progress",
                "response.output_item.added", "response.content_part.added",
                "response.reasoning_text.delta", "response.reasoning_text.delta",
                "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
                "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                "response.output_text.done", "response.content_part.done", "response.output_item.done",
                "response.completed",
            ], "\(d.client)")
        #expect(events.map(\.event.sequenceNumber) == Array(0..<events.count))
        #expect(events[4...5].compactMap(\.event.delta) == ["Let me", " think."])
        #expect(
            events[4...8].allSatisfy { $0.event.outputIndex == 0 }
                && events[9...14].allSatisfy { $0.event.outputIndex == 1 })
        #expect(events[6].event.text == "Let me think." && events[6].event.itemID == "rs_abc")
        #expect(events[8].event.item?.reasoning?.content.map(\.text) == ["Let me think."])
        let completed = try #require(events.last?.event.response)
        // Thinking after the text started is not the reasoning item's.
        #expect(completed.output.count == 2)
        #expect(
            completed.output[0].reasoning.map { ($0.id, $0.status, $0.content.map(\.text)) } ?? ("", "", []) == (
                "rs_abc", "completed", ["Let me think."]
            ))
        #expect(completed.output[1].message?.content.first?.text == "Hi")
        // stream: false: the same two items.
        var whole = Self.driver(streaming: false)
        _ = whole.feed(
            chunk("c", role: true) + thinking("Hm.") + chunk("c", content: "Yes") + chunk("c", finish: "stop"), from: 1)
        let object = try JSONDecoder().decode(
            ResponseObject.self, from: Data(String(buffer: whole.relay.responseBody(model: "m")).utf8))
        #expect(object.output.compactMap(\.reasoning).flatMap(\.content).map(\.text) == ["Hm."])
        #expect(object.output.last?.message?.content.first?.text == "Yes")
    }

    /// helper-64: a refusal (`delta.refusal`) was an empty, completed answer on the Responses API.
    @Test("A refusal is the message's refusal part: after any text, its own deltas, done events and object part")
    func refusal() throws {
        func refusing(_ text: String) -> String {
            #"data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"\#(text)"},"finish_reason":null}]}"#
                + "\n\n"
        }
        var d = Self.driver()
        _ = d.feed(
            chunk("c", role: true) + chunk("c", content: "Well,") + refusing("I can") + refusing("not."), from: 1)
        _ = d.feed(chunk("c", content: " no.") + chunk("c", finish: "stop") + "data: [DONE]\n\n", from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(
            events.map(\.name) == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta",
                "response.content_part.added", "response.refusal.delta", "response.refusal.delta",
                "response.output_text.delta",
                "response.output_text.done", "response.content_part.done",
                "response.refusal.done", "response.content_part.done",
                "response.output_item.done", "response.completed",
            ], "\(d.client)")
        #expect(events.map(\.event.sequenceNumber) == Array(0..<events.count))
        #expect(events[5].event.contentIndex == 1 && events[5].event.part == .text(.refusal("")))
        #expect(events[6...7].map(\.event.contentIndex) == [1, 1] && events[8].event.contentIndex == 0)
        #expect(events[6...7].compactMap(\.event.delta) == ["I can", "not."])
        #expect(events[11].event.refusal == "I cannot." && events[11].event.contentIndex == 1)
        #expect(events[12].event.part == .text(.refusal("I cannot.")))
        let completed = try #require(events.last?.event.response)
        let parts = completed.output.first?.message?.content ?? []
        #expect(parts.map(\.type) == ["output_text", "refusal"] && parts.map(\.text) == ["Well, no.", "I cannot."])
        // As OpenAI writes a refusal part: its text in `refusal`, no `text`, `annotations` or `logprobs`.
        #expect(
            String(buffer: JSON.buffer(ResponseObject.OutputText.refusal("No.")))
                == #"{"refusal":"No.","type":"refusal"}"#)
        // stream: false, the refusal alone: one refusal part.
        var whole = Self.driver(streaming: false)
        _ = whole.feed(chunk("c", role: true) + refusing("No.") + chunk("c", finish: "stop"), from: 1)
        let object = try JSONDecoder().decode(
            ResponseObject.self, from: Data(String(buffer: whole.relay.responseBody(model: "m")).utf8))
        #expect(object.output.last?.message?.content == [.refusal("No.")])
        // The chat view of the same: `message.refusal`, empty content.
        var chat = RelayDriver(streaming: false)
        _ = chat.feed(chunk("c", role: true) + refusing("No.") + chunk("c", finish: "stop"), from: 1)
        let message = chat.relay.response(model: "m").choices[0].message
        #expect(message?.refusal == "No." && message?.content == "")
    }

    /// Review of 1835c4a: choice 0 listed second, then thinking: the renderer opened a reasoning item
    /// the relay had not kept, and `output[1]` trapped — a central answer killed the gateway.
    @Test("Choice 0 listed after another, then thinking: the items announced and the final output agree")
    func choiceZeroNotFirst() throws {
        // With n = 1 (as the Responses API always asks) the second choice fails the attempt
        // (`bad_choice_index`); the renderer must still not trap when it gets one.
        var d = Self.driver(choices: 2)
        let twoChoices =
            #"data: {"id":"c","choices":[{"index":1,"delta":{"content":"other"},"finish_reason":null},{"index":0,"delta":{"content":"hello"},"finish_reason":null}]}"#
            + "\n\n"
        let thinking =
            #"data: {"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"late"},"finish_reason":null}]}"#
            + "\n\n"
        _ = d.feed(chunk("c", role: true) + twoChoices + thinking + chunk("c", finish: "stop"), from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(!events.contains { $0.name.hasPrefix("response.reasoning") }, "\(d.client)")
        #expect(events.compactMap(\.event.delta) == ["hello"])
        let completed = try #require(events.last?.event.response)
        #expect(completed.output.count == 1 && completed.output[0].message?.content.first?.text == "hello")
    }

    @Test("Failed while thinking: response.failed holds the reasoning item cut off, and no message never added")
    func failedWhileThinking() throws {
        var d = Self.driver()
        let thinking =
            #"data: {"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"Hm"},"finish_reason":null}]}"#
            + "\n\n"
        _ = d.feed(chunk("c", role: true) + thinking, from: 1)
        d.out.writeImmutableBuffer(d.relay.clientErrorEvent(.upstreamFailed("lost")))
        let events = try Self.events(d.client)
        let failed = try #require(events.last?.event.response)
        #expect(events.last?.name == "response.failed")
        #expect(failed.output.count == 1)
        #expect(
            failed.output[0].reasoning.map { ($0.status, $0.content.map(\.text)) } ?? ("", []) == ("incomplete", ["Hm"])
        )
    }

    @Test("The upstream's cached and reasoning tokens reach the response's usage details, bounded by its counts")
    func usageDetails() throws {
        func completed(usage: String) throws -> ResponseObject.TokenUsage? {
            var d = Self.driver()
            let usageChunk =
                #"data: {"id":"a","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":"#
                + usage + "}\n\n"
            _ = d.feed(
                chunk("c", content: "Hi") + chunk("c", finish: "stop") + usageChunk + "data: [DONE]\n\n", from: 1)
            d.relay.finishStream(into: &d.out)
            return try Self.events(d.client).last?.event.response?.usage
        }
        let said = try completed(
            usage:
                #"{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":32},"completion_tokens_details":{"reasoning_tokens":12,"audio_tokens":0}}"#
        )
        #expect(said?.inputTokensDetails.cachedTokens == 32 && said?.outputTokensDetails.reasoningTokens == 12)
        #expect(said.map { [$0.inputTokens, $0.outputTokens, $0.totalTokens] } == [50, 20, 70])
        // A lying upstream: more cached than prompt tokens, negative reasoning.
        let lying = try completed(
            usage:
                #"{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":900},"completion_tokens_details":{"reasoning_tokens":-4}}"#
        )
        #expect(lying?.inputTokensDetails.cachedTokens == 5 && lying?.outputTokensDetails.reasoningTokens == 0)
        // One count of an unexpected size or type loses that count only.
        let odd = try completed(
            usage:
                #"{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70,"prompt_tokens_details":{"cached_tokens":1e30},"completion_tokens_details":{"reasoning_tokens":12}}"#
        )
        #expect(odd?.inputTokensDetails.cachedTokens == 0 && odd?.outputTokensDetails.reasoningTokens == 12)
        let silent = try completed(usage: #"{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}"#)
        #expect(silent?.inputTokensDetails.cachedTokens == 0 && silent?.outputTokensDetails.reasoningTokens == 0)
    }

    @Test("Escaped tokens become deltas without a decode, and read as the text the relay kept")
    func escapedDeltas() throws {
        var d = Self.driver()
        _ = d.feed(SSERelayTests.pieces.map { rawChunk("c", $0) }.joined() + chunk("c", finish: "stop"), from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(events.compactMap(\.event.delta).joined() == SSERelayTests.piecesText)
        #expect(events.first { $0.name == "response.output_text.done" }?.event.text == SSERelayTests.piecesText)
        // Written as the text's canonical JSON, as before: `\u00e9` became é, `\/` a plain slash.
        #expect(d.client.contains(#""delta":"café""#) && d.client.contains(#""delta":"a/b\\""#))
    }

    @Test("The output limit ends it as response.incomplete, with reason max_output_tokens and no chat chunk")
    func incomplete() throws {
        var d = Self.driver(maxTokens: 2)
        let kinds = d.feed((1...3).map { chunk("c", content: "t\($0) ") }.joined(), from: 1)
        #expect(kinds.last == .overLimit)
        d.relay.finishOverLimit(into: &d.out)
        d.relay.finishStream(into: &d.out)
        let events = try Self.events(d.client)
        #expect(events.last?.name == "response.incomplete")
        let response = try #require(events.last?.event.response)
        #expect(response.status == "incomplete" && response.incompleteDetails?.reason == "max_output_tokens")
        #expect(response.output.first?.message?.status == "incomplete")
        #expect(events.compactMap(\.event.delta) == ["t1 ", "t2 "])
    }

    @Test("A mid-stream failure is response.failed with the text so far, where chat sends its error event")
    func failed() throws {
        var d = Self.driver()
        _ = d.feed(chunk("c", content: "partial"), from: 1)
        var out = d.out
        out.writeImmutableBuffer(d.relay.clientErrorEvent(.upstreamFailed("The stream was lost.")))
        let events = try Self.events(String(buffer: out))
        #expect(events.last?.name == "response.failed")
        let response = try #require(events.last?.event.response)
        #expect(response.status == "failed" && response.error?.code == "server_error")
        #expect(response.error?.message == "The stream was lost.")
        #expect(response.output.first?.message?.content.first?.text == "partial")
        #expect(events.map(\.event.sequenceNumber) == Array(0..<events.count))
    }

    @Test("stream: false is one response object; a continuation's role chunk adds nothing")
    func whole() throws {
        var d = Self.driver(streaming: false)
        _ = d.feed(chunk("a", role: true) + chunk("a", content: "one "), from: 1)
        d.committed = nil  // failover: attempt 2 continues
        _ = d.feed(chunk("b", role: true) + chunk("b", content: "two") + chunk("b", finish: "stop"), from: 2)
        #expect(d.client.isEmpty)
        let response = try JSONDecoder().decode(
            ResponseObject.self, from: Data(d.relay.responseBody(model: "fleet-8b").readableBytesView))
        #expect(response.object == "response" && response.status == "completed")
        #expect(response.output.count == 1 && response.output[0].message?.content[0].text == "one two")
        #expect(response.usage?.outputTokens == 2)
        #expect(response.maxOutputTokens == 3 && response.store == false)
    }

    @Test("The chat view is unchanged: no event lines, chat chunks and [DONE]")
    func chatUnchanged() {
        var d = RelayDriver()
        _ = d.feed(chunk("a", role: true) + chunk("a", content: "x") + chunk("a", finish: "stop"), from: 1)
        d.relay.finishStream(into: &d.out)
        #expect(!d.client.contains("event:"))
        #expect(d.client.hasSuffix("data: [DONE]\n\n"))
        #expect(d.clientChunks.count == 3)
    }
}
