import ConvoyReasoning
import ConvoyScenario
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import Testing
@testable import ConvoyModelServers

/// The OpenAI-compatible client against a small local HTTP server (SwiftNIO) that answers as a
/// model server would, or fails as one can: 5xx, a stalled stream, a malformed body, a refused
/// connection, a call too long.
@Suite(.timeLimit(.minutes(1))) struct OpenAIClientTests {
    func spec(_ server: FakeModelServer?, api: BackendSpec.API = .completions, timeout: Double = 10, stall: Double = 2) -> BackendSpec {
        BackendSpec(url: server.map { "http://127.0.0.1:\($0.port)" } ?? "http://127.0.0.1:1", model: "smollm2-135m", api: api,
                    timeout: timeout, stall: stall)
    }

    let call = ModelCall(requestID: "veh1/1", model: "smollm2-135m", prompt: "Is the road clear?", maxTokens: 8)

    static func chunk(_ text: String) -> String { #"{"choices":[{"text":"\#(text)","index":0,"finish_reason":null}]}"# }

    @Test func aStreamedCompletionIsMeasured() async throws {
        let server = try await FakeModelServer(.stream([Self.chunk("Yes"), Self.chunk(", it"), Self.chunk(" is."),
                                                        #"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}}"#],
                                                       delay: 0.05))
        defer { server.stop() }
        let result = await OpenAIClient(spec: spec(server)).run(call)
        #expect(result.failure == nil)
        #expect(result.answer == "Yes, it is.")
        #expect(result.promptTokens == 9 && result.completionTokens == 3)
        let ttft = try #require(result.timeToFirstToken)
        #expect(ttft >= 0.04 && ttft < result.wallSeconds)
        #expect(result.wallSeconds >= 0.15)
        #expect(result.decodeRate != nil)
        // What the server was asked.
        let body = try #require(server.lastBody)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["prompt"] as? String == "Is the road clear?")
        #expect(json["model"] as? String == "smollm2-135m")
        #expect(json["max_tokens"] as? Int == 8 && json["stream"] as? Bool == true)
        #expect(server.lastPath == "/v1/completions")
    }

    @Test func withoutUsageTheStreamedTokensAreCounted() async throws {
        let server = try await FakeModelServer(.stream([Self.chunk("A"), Self.chunk("B"), Self.chunk("")], delay: 0))
        defer { server.stop() }
        let result = await OpenAIClient(spec: spec(server)).run(call)
        #expect(result.answer == "AB" && result.completionTokens == 2 && result.promptTokens == nil)
    }

    @Test func chatSendsOneUserMessageAndReadsTheDeltas() async throws {
        let delta = { (t: String) in #"{"choices":[{"delta":{"content":"\#(t)"},"index":0}]}"# }
        let server = try await FakeModelServer(.stream([#"{"choices":[{"delta":{"role":"assistant"},"index":0}]}"#, delta("Clear"), delta(".")],
                                                       delay: 0))
        defer { server.stop() }
        let result = await OpenAIClient(spec: spec(server, api: .chat)).run(call)
        #expect(result.failure == nil && result.answer == "Clear.")
        #expect(server.lastPath == "/v1/chat/completions")
        let json = try #require(try JSONSerialization.jsonObject(with: Data((server.lastBody ?? "").utf8)) as? [String: Any])
        let messages = try #require(json["messages"] as? [[String: String]])
        #expect(messages == [["role": "user", "content": "Is the road clear?"]])
    }

    @Test func aServerErrorEndsTheCallWithItsStatus() async throws {
        let server = try await FakeModelServer(.status(503, "model is loading"))
        defer { server.stop() }
        let result = await OpenAIClient(spec: spec(server)).run(call)
        #expect(result.failure == "HTTP 503: model is loading")
        #expect(result.answer.isEmpty)
    }

    @Test func aStalledStreamIsCutAfterTheStallTime() async throws {
        let server = try await FakeModelServer(.stall(first: Self.chunk("Yes")))
        defer { server.stop() }
        let started = ContinuousClock.now
        let result = await OpenAIClient(spec: spec(server, stall: 0.5)).run(call)
        #expect(result.failure == "stalled: no data for 0.5 s")
        #expect(result.answer == "Yes", "what came before the stall is kept")
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test func aCallLongerThanTheTimeOutFails() async throws {
        // A stream that keeps sending, slowly, past the time-out.
        let server = try await FakeModelServer(.stream(Array(repeating: Self.chunk("x"), count: 40), delay: 0.1))
        defer { server.stop() }
        let result = await OpenAIClient(spec: spec(server, timeout: 1, stall: 5)).run(call)
        let failure = try #require(result.failure)
        #expect(failure.contains("timed out"))
    }

    @Test func aMalformedBodyIsAFailureNotACrash() async throws {
        for body in ["{not json", #"{"object":"text_completion"}"#, #"{"error":{"message":"context overflow"}}"#] {
            let server = try await FakeModelServer(.stream([body], delay: 0))
            let result = await OpenAIClient(spec: spec(server)).run(call)
            server.stop()
            let failure = try #require(result.failure)
            #expect(failure.hasPrefix("malformed body"), "\(body): \(failure)")
        }
        let empty = try await FakeModelServer(.stream([], delay: 0))
        defer { empty.stop() }
        #expect(await OpenAIClient(spec: spec(empty)).run(call).failure == "malformed body: the stream ended without a completion")
    }

    @Test func aRefusedConnectionIsAFailure() async throws {
        // Port 1 on loopback: nothing listens.
        let result = await OpenAIClient(spec: spec(nil)).run(call)
        #expect(result.failure == "connection refused")
    }

    @Test func cancellingTheTaskAbortsTheCall() async throws {
        let server = try await FakeModelServer(.stall(first: Self.chunk("Yes")))
        defer { server.stop() }
        let client = OpenAIClient(spec: spec(server, stall: 30))
        let task = Task { await client.run(call) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let result = await task.value
        #expect(result.failure == "aborted")
    }

    @Test func theEndpointFollowsTheBaseURL() {
        for (url, expected) in [("http://h:1", "http://h:1/v1/completions"), ("http://h:1/", "http://h:1/v1/completions"),
                                ("http://h:1/v1", "http://h:1/v1/completions")] {
            #expect(OpenAIClient(spec: BackendSpec(url: url, model: "m")).endpoint == expected)
        }
    }

    @Test func serverSentEventsAreSplitWhereverTheBytesBreak() {
        let body = Array("data: {\"a\":1}\n\n: comment\ndata: two\r\ndata: lines\r\n\r\ndata: [DONE]\n\n".utf8)
        for cut in 0...body.count {
            var parser = ServerSentEvents()
            let events = parser.feed(Array(body[..<cut])) + parser.feed(Array(body[cut...])) + parser.finish()
            #expect(events == ["{\"a\":1}", "two\nlines", "[DONE]"], "cut at \(cut)")
        }
        var parser = ServerSentEvents()
        #expect(parser.feed(Array("data: last".utf8)).isEmpty)
        #expect(parser.finish() == ["last"])
    }
}

/// A local HTTP server that answers every POST as `behaviour` says.
final class FakeModelServer: Sendable {
    enum Behaviour: Sendable {
        /// `text/event-stream`: each string as a `data:` event, `delay` seconds apart, then `[DONE]`.
        case stream([String], delay: Double)
        case status(Int, String)
        /// One event, then silence (the connection stays open).
        case stall(first: String)
    }

    /// The last request's path and body.
    final class Seen: Sendable {
        let state = Mutex<(path: String?, body: String?)>((nil, nil))
    }

    let port: Int
    private let channel: any Channel
    private let seen = Seen()

    var lastPath: String? { seen.state.withLock { $0.path } }
    var lastBody: String? { seen.state.withLock { $0.body } }

    init(_ behaviour: Behaviour) async throws {
        let seen = seen
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap {
                    channel.pipeline.addHandler(Handler(behaviour: behaviour, seen: seen))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    func stop() { try? channel.close().wait() }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let behaviour: Behaviour
        let seen: Seen
        var path = ""
        var body = ""

        init(behaviour: Behaviour, seen: Seen) {
            self.behaviour = behaviour
            self.seen = seen
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head): path = head.uri
            case .body(let buffer): body += String(buffer: buffer)
            case .end:
                seen.state.withLock { $0 = (path, body) }
                respond(context)
            }
        }

        private func respond(_ context: ChannelHandlerContext) {
            let loop = context.eventLoop
            let ctx = NIOLoopBound(context, eventLoop: loop)
            switch behaviour {
            case .status(let code, let text):
                var headers = HTTPHeaders()
                headers.add(name: "Content-Length", value: "\(text.utf8.count)")
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .init(statusCode: code), headers: headers))),
                              promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: text)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            case .stream(let events, let delay):
                streamHead(context)
                func send(_ index: Int) {
                    let context = ctx.value
                    guard index < events.count else {
                        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "data: [DONE]\n\n")))), promise: nil)
                        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                        return
                    }
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "data: \(events[index])\n\n")))), promise: nil)
                    loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { send(index + 1) }
                }
                loop.scheduleTask(in: .nanoseconds(Int64(delay * 1e9))) { send(0) }
            case .stall(let first):
                streamHead(context)
                context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "data: \(first)\n\n")))), promise: nil)
            }
        }

        private func streamHead(_ context: ChannelHandlerContext) {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "text/event-stream")
            headers.add(name: "Transfer-Encoding", value: "chunked")
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        }
    }
}
