import FleetGate
import FleetProtocol
import Foundation
import NIOCore
import Testing

/// Function calls on `/v1/responses`: chat's `delta.tool_calls` in, `function_call` items out.
@Suite("ResponsesRenderer: function calls")
struct ResponsesFunctionCallTests {
    static func calls(_ json: String, finish: String? = nil) -> String {
        let reason = finish.map { "\"\($0)\"" } ?? "null"
        return #"data: {"id":"a","choices":[{"index":0,"delta":{"tool_calls":\#(json)},"finish_reason":\#(reason)}]}"#
            + "\n\n"
    }

    /// Text, then one call's arguments in two pieces, then a second call.
    static let stream =
        chunk("a", content: "Let me look.")
        + calls(#"[{"index":0,"id":"call_1","type":"function","function":{"name":"weather","arguments":"{\"c\":"}}]"#)
        + calls(#"[{"index":0,"function":{"arguments":"1}"}}]"#)
        + calls(#"[{"index":1,"id":"call_2","type":"function","function":{"name":"time","arguments":"{}"}}]"#)
        + chunk("a", finish: "tool_calls") + "data: [DONE]\n\n"

    @Test("Streamed: the message closes at the first call, each call is an item with its argument deltas")
    func streamed() throws {
        var d = ResponsesRendererTests.driver()
        _ = d.feed(Self.stream, from: 1)
        d.relay.finishStream(into: &d.out)
        let events = try ResponsesRendererTests.events(d.client)
        #expect(
            events.map(\.name) == [
                "response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.done",
                "response.content_part.done", "response.output_item.done",
                "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.delta", "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done", "response.completed",
            ])
        #expect(events.map(\.event.sequenceNumber) == Array(0..<events.count))
        #expect(events[8].event.outputIndex == 1 && events[13].event.outputIndex == 2)
        #expect(
            events[8].event.item
                == .functionCall(
                    .init(id: "fc_abc_0", callID: "call_1", name: "weather", arguments: "", status: "in_progress")))
        #expect(events[11].event.arguments == #"{"c":1}"# && events[11].event.name == "weather")
        #expect(events[15].event.name == "time")
        let completed = try #require(events.last?.event.response)
        #expect(completed.status == "completed")
        #expect(completed.output.count == 3 && completed.output[0].message?.content.first?.text == "Let me look.")
        #expect(
            completed.output.dropFirst() == [
                .functionCall(
                    .init(
                        id: "fc_abc_0", callID: "call_1", name: "weather", arguments: #"{"c":1}"#, status: "completed")),
                .functionCall(
                    .init(id: "fc_abc_1", callID: "call_2", name: "time", arguments: "{}", status: "completed")),
            ])
    }

    @Test("Calls only: no message item, streamed or whole; a failure mid-call leaves it incomplete")
    func callsOnly() throws {
        let only = String(Self.stream.drop(while: { $0 != "\n" }).dropFirst(2))
        var streamed = ResponsesRendererTests.driver()
        _ = streamed.feed(only, from: 1)
        streamed.relay.finishStream(into: &streamed.out)
        let completed = try #require(try ResponsesRendererTests.events(streamed.client).last?.event.response)
        #expect(completed.output.map { $0.message == nil } == [true, true])

        var whole = ResponsesRendererTests.driver(streaming: false)
        _ = whole.feed(only, from: 1)
        let response = try JSONDecoder().decode(
            ResponseObject.self, from: Data(whole.relay.responseBody(model: "fleet-8b").readableBytesView))
        #expect(response.status == "completed")
        #expect(response.output == completed.output)

        var cut = ResponsesRendererTests.driver()
        _ = cut.feed(Self.calls(#"[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{"}}]"#), from: 1)
        cut.out.writeImmutableBuffer(cut.relay.clientErrorEvent(.upstreamFailed("lost")))
        let failed = try #require(try ResponsesRendererTests.events(cut.client).last?.event.response)
        #expect(failed.status == "failed")
        #expect(
            failed.output == [
                .functionCall(.init(id: "fc_abc_0", callID: "call_1", name: "f", arguments: "{", status: "incomplete"))
            ])
    }

    /// helper-69: Ollama's parallel calls, each whole at `index` 0, became one call.
    @Test("Calls at one index with their own ids are items of their own, streamed and whole", arguments: [true, false])
    func sameIndex(streaming: Bool) throws {
        let stream =
            Self.calls(
                #"[{"index":0,"id":"a","type":"function","function":{"name":"weather","arguments":"{\"c\":1}"}}]"#)
            + Self.calls(
                #"[{"index":0,"id":"b","type":"function","function":{"name":"weather","arguments":"{\"c\":2}"}}]"#)
            + chunk("a", finish: "tool_calls") + "data: [DONE]\n\n"
        var d = ResponsesRendererTests.driver(streaming: streaming)
        _ = d.feed(stream, from: 1)
        let output: [ResponseObject.OutputItem]
        if streaming {
            d.relay.finishStream(into: &d.out)
            output = try #require(try ResponsesRendererTests.events(d.client).last?.event.response).output
        } else {
            output = try JSONDecoder().decode(
                ResponseObject.self, from: Data(d.relay.responseBody(model: "fleet-8b").readableBytesView)
            ).output
        }
        #expect(
            output == [
                .functionCall(
                    .init(id: "fc_abc_0", callID: "a", name: "weather", arguments: #"{"c":1}"#, status: "completed")),
                .functionCall(
                    .init(id: "fc_abc_1", callID: "b", name: "weather", arguments: #"{"c":2}"#, status: "completed")),
            ])
    }

    /// helper-69: a call cut by `max_output_tokens` was `completed` with arguments that are no JSON.
    @Test("A call the output limit cut is incomplete, streamed and whole", arguments: [true, false])
    func cutCall(streaming: Bool) throws {
        let stream =
            Self.calls(#"[{"index":0,"id":"a","type":"function","function":{"name":"weather","arguments":"{\"cit"}}]"#)
            + chunk("a", finish: "length") + "data: [DONE]\n\n"
        var d = ResponsesRendererTests.driver(streaming: streaming)
        _ = d.feed(stream, from: 1)
        let response: ResponseObject
        if streaming {
            d.relay.finishStream(into: &d.out)
            let events = try ResponsesRendererTests.events(d.client)
            let done = events.first { $0.name == "response.output_item.done" }?.event.item
            #expect(done.map { if case .functionCall(let call) = $0 { call.status } else { "" } } == "incomplete")
            response = try #require(events.last?.event.response)
        } else {
            response = try JSONDecoder().decode(
                ResponseObject.self, from: Data(d.relay.responseBody(model: "fleet-8b").readableBytesView))
        }
        #expect(response.status == "incomplete")
        #expect(
            response.output == [
                .functionCall(
                    .init(id: "fc_abc_0", callID: "a", name: "weather", arguments: #"{"cit"#, status: "incomplete"))
            ])
    }
}
