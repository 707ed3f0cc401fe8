import AsyncHTTPClient
import FleetHTTP2
import NIOCore
import NIOHTTP1

/// async-http-client's view of one ``OpenAILocalJob``. The request is executed with
/// `.delegate(on:)` the job's event loop, so every callback arrives there and is a direct call;
/// one that did not would hop rather than touch the job off its loop.
final class OpenAILocalResponseDelegate: HTTPClientResponseDelegate, Sendable {
    typealias Response = Void
    let job: NIOLoopBound<OpenAILocalJob>

    init(job: NIOLoopBound<OpenAILocalJob>) { self.job = job }

    func didReceiveHead(task: HTTPClient.Task<Void>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        let status = head.status.code
        self.onLoop { $0.receivedHead(status: status) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Void>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        let job = self.job
        guard job.eventLoop.inEventLoop else { return job.eventLoop.flatSubmit { job.value.receivedBodyPart(buffer) } }
        return job.value.receivedBodyPart(buffer)
    }

    func didReceiveError(task: HTTPClient.Task<Void>, _ error: any Error) {
        self.onLoop { $0.receivedError(error) }
    }

    func didFinishRequest(task: HTTPClient.Task<Void>) throws {
        self.onLoop { $0.receivedEnd() }
    }

    private func onLoop(_ body: @escaping @Sendable (OpenAILocalJob) -> Void) {
        let job = self.job
        job.eventLoop.executeOrRun { body(job.value) }
    }
}
