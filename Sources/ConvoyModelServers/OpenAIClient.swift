import AsyncHTTPClient
import ConvoyReasoning
import ConvoyScenario
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Calls a real model server's OpenAI-compatible API (`/v1/completions` or `/v1/chat/completions`),
/// streaming, and measures the call on the wall clock: time to the first token, the whole call,
/// the tokens. Every failure — refused connection, HTTP error status, a stream silent for longer
/// than `stall`, a call longer than `timeout`, a body that is not the API's — ends the call with a
/// reason (`ModelCallResult.failure`); nothing is thrown.
public final class OpenAIClient: Sendable {
    public let spec: BackendSpec
    private let http: HTTPClient

    public init(spec: BackendSpec) {
        self.spec = spec
        http = Self.client
    }

    /// One HTTP client per process, never shut down (it lives as long as the process). A refused
    /// connection fails the call at once rather than being retried until the time-out: the node
    /// then fails over, as for a dead RSU.
    private static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout.connect = .seconds(5)
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()

    /// The endpoint of the API the spec names.
    var endpoint: String {
        let base = spec.url.hasSuffix("/") ? String(spec.url.dropLast()) : spec.url
        let root = base.hasSuffix("/v1") ? base : base + "/v1"
        return root + (spec.api == .chat ? "/chat/completions" : "/completions")
    }

    /// Runs `call`; cancelling the task stops it (the result then says "aborted").
    public func run(_ call: ModelCall) async -> ModelCallResult {
        let clock = ContinuousClock()
        let start = clock.now
        let progress = CallProgress(start: start)
        let seconds = { (instant: ContinuousClock.Instant) in Self.seconds(instant - start) }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.stream(call, into: progress) }
                group.addTask { try await self.watch(progress) }
                try await group.next()
                group.cancelAll()
            }
            let state = progress.snapshot()
            return ModelCallResult(requestID: call.requestID, wallSeconds: seconds(clock.now),
                                   timeToFirstToken: state.firstToken.map(seconds), promptTokens: state.promptTokens,
                                   completionTokens: state.completionTokens ?? state.chunks, answer: state.answer)
        } catch {
            let state = progress.snapshot()
            return ModelCallResult(requestID: call.requestID, wallSeconds: seconds(clock.now),
                                   timeToFirstToken: state.firstToken.map(seconds), promptTokens: state.promptTokens,
                                   completionTokens: state.completionTokens ?? state.chunks, answer: state.answer,
                                   failure: Self.reason(error))
        }
    }

    /// The request body of `call`.
    func body(_ call: ModelCall) -> [String: Any] {
        var body: [String: Any] = ["model": spec.model, "max_tokens": call.maxTokens, "stream": true, "temperature": 0,
                                   "stream_options": ["include_usage": true]]
        switch spec.api {
        case .completions: body["prompt"] = call.prompt
        case .chat: body["messages"] = [["role": "user", "content": call.prompt]]
        }
        return body
    }

    private func stream(_ call: ModelCall, into progress: CallProgress) async throws {
        let response = try await post(body(call), accept: "text/event-stream")
        progress.touch()
        guard response.status.code < 300 else {
            var text = ""
            for try await part in response.body {
                text += String(buffer: part)
                if text.utf8.count > 300 { break }
            }
            throw CallFailure.status(Int(response.status.code), String(text.prefix(200)))
        }
        var parser = ServerSentEvents()
        var done = false
        reading: for try await part in response.body {
            progress.touch()
            for event in parser.feed(Array(buffer: part)) {
                if event == "[DONE]" {
                    done = true
                    break reading
                }
                progress.add(try CompletionChunk.decode(event, api: spec.api))
            }
        }
        if !done {
            for event in parser.finish() where event != "[DONE]" {
                progress.add(try CompletionChunk.decode(event, api: spec.api))
            }
        }
        guard progress.snapshot().sawChunk else { throw CallFailure.malformed("the stream ended without a completion") }
    }

    /// POSTs `body` as JSON to the API's endpoint, within the spec's time-out.
    func post(_ body: [String: Any], accept: String) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: accept)
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        return try await http.execute(request, timeout: .nanoseconds(Int64(spec.timeout * 1e9)))
    }

    /// Throws when the call runs past `timeout` or nothing arrives for `stall` seconds.
    private func watch(_ progress: CallProgress) async throws {
        let tick = min(spec.stall, spec.timeout) / 4
        while true {
            try await Task.sleep(for: .seconds(tick))
            let state = progress.snapshot()
            let now = ContinuousClock.now
            if Self.seconds(now - progress.start) > spec.timeout { throw CallFailure.timedOut(spec.timeout) }
            if Self.seconds(now - state.lastActivity) > spec.stall { throw CallFailure.stalled(spec.stall) }
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    /// A short reason for a failed call, as recorded.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let failure as CallFailure: return failure.description
        case is CancellationError: return "aborted"
        case let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout:
            return "timed out"
        case let error as HTTPClientError where error == .cancelled:
            return "aborted"
        case let error as HTTPClientError where error == .remoteConnectionClosed:
            return "connection closed by the model server"
        default:
            let text = String(describing: error)
            if text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("ECONNREFUSED") {
                return "connection refused"
            }
            return "connection failed: " + String(text.prefix(160))
        }
    }
}

/// Why a call failed (beyond the HTTP client's own errors).
enum CallFailure: Error, CustomStringConvertible {
    case status(Int, String)
    case stalled(Double)
    case timedOut(Double)
    case malformed(String)

    var description: String {
        switch self {
        case .status(let code, let body): "HTTP \(code)" + (body.isEmpty ? "" : ": \(body)")
        case .stalled(let s): "stalled: no data for \(s) s"
        case .timedOut(let s): "timed out after \(s) s"
        case .malformed(let why): "malformed body: \(why)"
        }
    }
}

/// What a call has received so far; shared by the streaming task and its watchdog.
final class CallProgress: Sendable {
    struct State {
        var lastActivity: ContinuousClock.Instant
        var firstToken: ContinuousClock.Instant?
        var answer = ""
        var chunks = 0
        var sawChunk = false
        var promptTokens: Int?
        var completionTokens: Int?
    }

    let start: ContinuousClock.Instant
    private let state: Mutex<State>

    init(start: ContinuousClock.Instant) {
        self.start = start
        state = Mutex(State(lastActivity: start))
    }

    func touch() { state.withLock { $0.lastActivity = .now } }

    func add(_ chunk: CompletionChunk) {
        state.withLock { s in
            s.sawChunk = true
            if !chunk.text.isEmpty {
                if s.firstToken == nil { s.firstToken = .now }
                s.answer += chunk.text
                s.chunks += 1
            }
            if let p = chunk.promptTokens { s.promptTokens = p }
            if let c = chunk.completionTokens { s.completionTokens = c }
        }
    }

    func snapshot() -> State { state.withLock { $0 } }
}

/// One streamed chunk of a completion: its text (or the chat delta's content) and, where the
/// server sends it, the usage.
struct CompletionChunk: Equatable {
    var text: String
    var promptTokens: Int?
    var completionTokens: Int?

    private struct Wire: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable { var content: String? }
            var text: String?
            var delta: Delta?
        }
        struct Usage: Decodable {
            var prompt_tokens: Int?
            var completion_tokens: Int?
        }
        struct Failure: Decodable { var message: String? }
        var choices: [Choice]?
        var usage: Usage?
        var error: Failure?
    }

    /// Decodes one SSE `data:` payload; a payload that is not a completion chunk is `CallFailure.malformed`,
    /// an `error` object is reported as the server's error.
    static func decode(_ data: String, api: BackendSpec.API) throws -> CompletionChunk {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(data.utf8))
        } catch {
            throw CallFailure.malformed("not a completion chunk: \(data.prefix(80))")
        }
        if let error = wire.error { throw CallFailure.malformed("the server reported: \(error.message ?? "an error")") }
        guard let choices = wire.choices else { throw CallFailure.malformed("a chunk without choices: \(data.prefix(80))") }
        let first = choices.first
        let text = (api == .chat ? first?.delta?.content : first?.text ?? first?.delta?.content) ?? ""
        return CompletionChunk(text: text, promptTokens: wire.usage?.prompt_tokens, completionTokens: wire.usage?.completion_tokens)
    }
}

/// Splits a `text/event-stream` body into the data of its events (lines `data: …`, events ended by a
/// blank line; comments and other fields ignored). Pure; fed the body as it arrives.
struct ServerSentEvents {
    private var pending: [UInt8] = []
    private var data: [String] = []

    /// The events completed by `bytes`.
    mutating func feed(_ bytes: [UInt8]) -> [String] {
        pending += bytes
        var events: [String] = []
        while let newline = pending.firstIndex(of: 0x0A) {
            var line = pending[..<newline]
            if line.last == 0x0D { line = line.dropLast() }
            pending.removeSubrange(...newline)
            if let event = take(line: String(decoding: line, as: UTF8.self)) { events.append(event) }
        }
        return events
    }

    /// The event left when the body ends without a final blank line.
    mutating func finish() -> [String] {
        if !pending.isEmpty {
            _ = take(line: String(decoding: pending, as: UTF8.self))
            pending = []
        }
        return take(line: "").map { [$0] } ?? []
    }

    private mutating func take(line: String) -> String? {
        if line.isEmpty {
            guard !data.isEmpty else { return nil }
            defer { data = [] }
            return data.joined(separator: "\n")
        }
        if line.hasPrefix("data:") {
            var value = line.dropFirst(5)
            if value.first == " " { value = value.dropFirst() }
            data.append(String(value))
        }
        return nil
    }
}

extension OpenAIClient {
    /// The prompt's token count as the server counts it (`usage.prompt_tokens` of a one-token,
    /// non-streamed completion); nil when the server does not say.
    public func promptTokens(_ prompt: String) async throws -> Int? {
        var body = self.body(ModelCall(requestID: "count", model: spec.model, prompt: prompt, maxTokens: 1))
        body["stream"] = false
        body.removeValue(forKey: "stream_options")
        let response = try await post(body, accept: "application/json")
        let data = try await response.body.collect(upTo: 1 << 20)
        guard response.status.code < 300 else { throw CallFailure.status(Int(response.status.code), String(buffer: data).prefix(200).description) }
        struct Usage: Decodable {
            struct Counts: Decodable { var prompt_tokens: Int? }
            var usage: Counts?
        }
        return try JSONDecoder().decode(Usage.self, from: Data(Array(buffer: data))).usage?.prompt_tokens
    }
}

/// `convoy calibrate`: measures a real server's prefill and decode speed with calls of several
/// prompt and output lengths, and fits a `MeasuredProfile`.
public enum Calibration {
    /// Approximate prompt sizes (tokens) and output lengths measured.
    public static let promptSizes = [16, 64, 256, 512]
    public static let outputLengths = [16, 64]

    /// Runs the calls (one warm-up first, not kept) and returns the samples; `progress` gets a line per call.
    public static func measure(_ client: OpenAIClient, repeats: Int, progress: (String) -> Void) async throws -> [CalibrationSample] {
        let warmUp = await client.run(ModelCall(requestID: "warm-up", model: client.spec.model, prompt: "Hello", maxTokens: 4))
        if let failure = warmUp.failure { throw CalibrationError.callFailed(failure) }
        var samples: [CalibrationSample] = []
        // Every call gets a prompt of its own (a distinct first line): a server that caches prompt
        // prefixes (llama.cpp does) would otherwise skip the prefill being measured.
        var variant = 1000
        func prompt(_ size: Int) -> String {
            variant += 1
            return "Report \(variant).\n" + ModelServerCompute.fillerPrompt(tokens: size)
        }
        for size in promptSizes {
            let counted: Int?
            do {
                counted = try await client.promptTokens(prompt(size))
            } catch {
                throw CalibrationError.callFailed(OpenAIClient.reason(error))
            }
            for output in outputLengths {
                for round in 0..<repeats {
                    let result = await client.run(ModelCall(requestID: "calibrate-\(size)-\(output)-\(round)", model: client.spec.model,
                                                            prompt: prompt(size), maxTokens: output))
                    if let failure = result.failure { throw CalibrationError.callFailed(failure) }
                    guard let ttft = result.timeToFirstToken, let tokens = result.completionTokens,
                          let promptTokens = result.promptTokens ?? counted else {
                        progress("  prompt ~\(size) tokens, \(output) out: no token or no token count; skipped")
                        continue
                    }
                    let sample = CalibrationSample(promptTokens: promptTokens, completionTokens: tokens, timeToFirstToken: ttft,
                                                   decodeSeconds: result.wallSeconds - ttft)
                    samples.append(sample)
                    progress(String(format: "  prompt %4d tokens, %3d generated: TTFT %7.1f ms, decode %6.1f tokens/s", promptTokens, tokens,
                                    ttft * 1000, tokens > 1 ? Double(tokens - 1) / sample.decodeSeconds : 0))
                }
            }
        }
        return samples
    }
}

public enum CalibrationError: Error, CustomStringConvertible {
    case callFailed(String)
    case tooFewSamples

    public var description: String {
        switch self {
        case .callFailed(let why): "a calibration call failed: \(why)"
        case .tooFewSamples: "too few usable calls to fit a profile (need two prompt sizes and a call with two tokens or more)"
        }
    }
}
