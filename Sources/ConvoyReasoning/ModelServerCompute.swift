/// A call to a real model server, as the node's shell is asked to make it.
public struct ModelCall: Sendable, Equatable {
    public var requestID: String
    /// The model name the server is asked for (the map's `backend.model`).
    public var model: String
    public var prompt: String
    /// `max_tokens` of the completion (the task's output tokens).
    public var maxTokens: Int

    public init(requestID: String, model: String, prompt: String, maxTokens: Int) {
        self.requestID = requestID
        self.model = model
        self.prompt = prompt
        self.maxTokens = maxTokens
    }
}

/// What a backend asks its node's shell to do. Only a backend whose jobs end on their own (a real
/// model server) has any; the modelled backend has none.
public enum ComputeCommand: Sendable, Equatable {
    /// Send the call to the model server; report how it ended with `ModelCallResult`.
    case run(ModelCall)
    /// Nobody wants the answer of this call any more: stop it (its result, if any, is ignored).
    case abort(requestID: String)
}

/// How a model server call ended, as the shell measured it on the wall clock.
public struct ModelCallResult: Sendable, Equatable {
    public var requestID: String
    /// Wall seconds from sending the call to its last byte (or to the failure).
    public var wallSeconds: Double
    /// Wall seconds from sending the call to the first generated token (nil: none came).
    public var timeToFirstToken: Double?
    /// Token counts from the server's `usage` (nil: it did not say).
    public var promptTokens: Int?
    public var completionTokens: Int?
    public var answer: String
    /// Why the call failed (refused connection, HTTP 5xx, stalled stream, time-out, malformed
    /// body, …); nil when it succeeded.
    public var failure: String?

    public init(requestID: String, wallSeconds: Double, timeToFirstToken: Double? = nil, promptTokens: Int? = nil,
                completionTokens: Int? = nil, answer: String = "", failure: String? = nil) {
        self.requestID = requestID
        self.wallSeconds = wallSeconds
        self.timeToFirstToken = timeToFirstToken
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.answer = answer
        self.failure = failure
    }

    /// Generated tokens per second after the first one (nil without two tokens and a first-token time).
    public var decodeRate: Double? {
        guard let ttft = timeToFirstToken, let n = completionTokens, n > 1, wallSeconds > ttft else { return nil }
        return Double(n - 1) / (wallSeconds - ttft)
    }
}

/// A real model server as a node's compute: its slots (parallel calls) and a bounded queue, with
/// de-duplication by request id, like the modelled backend; but a job ends when its call does.
/// Pure: the node passes the time; calls to make or stop come out of `takeCommands()`, and their
/// ends go in through `finished(_:now:)`.
///
/// **Time.** A call's emulated compute time is `timeScale` × its measured wall time: 1 takes this
/// machine's server as the device; 0.25 stands in for a device four times faster. The answer is
/// due at the call's emulated start plus that time. When the call ends before that instant (the
/// emulation runs slower than real time, or the scale is above 1) the answer is held until then;
/// when it ends after it (the emulation cannot go back), it is answered at once and the lateness
/// is recorded (`ModelOutput.late`).
public struct ModelServerCompute: ComputeBackend {
    /// A job: one call, shared by the attempts of its request.
    struct Job: Sendable {
        var work: ComputeWork
        var admittedAt: Double
        var startedAt: Double?
        /// When the answer is due (emulated); nil while the call runs or waits.
        var doneAt: Double?
        var waiters: Set<Int>
        var result: ModelCallResult?
        var late = 0.0
        var reported = false
    }

    /// The model this server answers for (requests for any other are `unsupported`).
    public let model: String
    public let slots: Int
    public let queueCapacity: Int
    public let timeScale: Double
    /// Compute time assumed before any call has been measured (emulated seconds).
    let initialEstimate: Double
    private var jobs: [String: Job] = [:]
    private var queue: [String] = []
    private var running: Set<String> = []
    private var commands: [ComputeCommand] = []
    /// Mean emulated compute time of the calls so far (exponentially weighted), for estimates.
    private var meanCompute: Double?
    private var down = false
    public private(set) var accounting = ComputeAccounting()

    /// How long finished jobs are remembered for de-duplication (emulated seconds).
    static let memory = 60.0

    public init(model: String, slots: Int, queueCapacity: Int, timeScale: Double = 1, initialEstimate: Double = 1) {
        precondition(slots > 0 && queueCapacity >= 0 && timeScale > 0)
        self.model = model
        self.slots = slots
        self.queueCapacity = queueCapacity
        self.timeScale = timeScale
        self.initialEstimate = initialEstimate
    }

    public func busy(now: Double) -> Int { running.count }
    public func waiting(now: Double) -> Int { queue.count }
    public func hasJob(_ requestID: String) -> Bool { jobs[requestID] != nil }

    /// From the mean measured compute time: when a new call would end if it joined the queue now.
    public func estimatedFinish(model: String, inputTokens: Int, outputTokens: Int, stage: SplitStage?, now: Double) -> Double? {
        guard model == self.model, stage == nil, !down, running.count < slots || queue.count < queueCapacity else { return nil }
        let each = meanCompute ?? initialEstimate
        let rounds = running.count < slots ? 0 : (queue.count / slots) + 1
        return now + Double(rounds + 1) * each
    }

    public mutating func admit(_ work: ComputeWork, now: Double) -> ComputeAdmission {
        forget(before: now - Self.memory)
        if var job = jobs[work.requestID] {
            job.waiters.insert(work.attempt)
            jobs[work.requestID] = job
            return .joined(wakeAt: job.doneAt.map { max(now, $0) })
        }
        guard !down else { return .unsupported("model server down") }
        guard work.stage == nil else { return .unsupported("a real model server runs whole models, not split stages") }
        guard work.model == model else { return .unsupported("this model server runs \(model), not \(work.model)") }
        guard running.count < slots || queue.count < queueCapacity else { return .rejected }
        jobs[work.requestID] = Job(work: work, admittedAt: now, waiters: [work.attempt])
        accounting.jobs += 1
        if running.count < slots { start(work.requestID, now: now) } else { queue.append(work.requestID) }
        return .admitted(wakeAt: nil)
    }

    public mutating func cancel(requestID: String, attempt: Int, now: Double) -> Bool {
        guard var job = jobs[requestID], job.waiters.remove(attempt) != nil else { return false }
        accounting.cancelled += 1
        jobs[requestID] = job
        guard job.waiters.isEmpty, job.doneAt == nil else { return true }
        // Nobody waits any more for a call not done: drop it (and stop it if it runs).
        jobs[requestID] = nil
        if let index = queue.firstIndex(of: requestID) {
            queue.remove(at: index)
        } else if running.remove(requestID) != nil {
            commands.append(.abort(requestID: requestID))
            startNext(now: now)
        }
        return true
    }

    public mutating func completions(now: Double) -> [ComputeCompletion] {
        var done: [ComputeCompletion] = []
        for (requestID, job) in jobs where !job.waiters.isEmpty {
            guard let doneAt = job.doneAt, doneAt <= now else { continue }
            let start = job.startedAt ?? job.admittedAt
            var completion = ComputeCompletion(requestID: requestID, attempts: job.waiters.sorted(), queueWait: start - job.admittedAt,
                                               computeTime: doneAt - start, failure: job.result?.failure,
                                               output: job.result.map {
                                                   ModelOutput(call: $0, work: job.work, model: model, startedAt: start,
                                                               compute: timeScale * $0.wallSeconds, late: job.late)
                                               })
            completion.outputIsNew = !job.reported
            done.append(completion)
            jobs[requestID]?.waiters = []
            jobs[requestID]?.reported = true
        }
        return done.sorted { $0.requestID < $1.requestID }
    }

    public mutating func takeCommands() -> [ComputeCommand] {
        defer { commands = [] }
        return commands
    }

    public mutating func finished(_ result: ModelCallResult, now: Double) -> Double? {
        guard running.remove(result.requestID) != nil, var job = jobs[result.requestID], let started = job.startedAt else {
            return nil  // aborted, or never started here: nobody wants it
        }
        let compute = timeScale * max(0, result.wallSeconds)
        let due = started + compute
        job.doneAt = max(now, due)
        job.late = max(0, now - due)
        job.result = result
        jobs[result.requestID] = job
        if result.failure == nil {
            meanCompute = meanCompute.map { 0.8 * $0 + 0.2 * compute } ?? compute
            accounting.computeMs += Int((compute * 1000).rounded())
        }
        startNext(now: now)
        return job.doneAt
    }

    public mutating func setServerDown(_ isDown: Bool, now: Double) {
        down = isDown
        guard isDown else { return }
        // Every call in flight or waiting ends now: the server is gone.
        for requestID in Array(running) + queue {
            if running.contains(requestID) { commands.append(.abort(requestID: requestID)) }
            let startedAt = jobs[requestID]?.startedAt ?? now
            jobs[requestID]?.startedAt = startedAt
            jobs[requestID]?.doneAt = now
            jobs[requestID]?.result = ModelCallResult(requestID: requestID, wallSeconds: 0, failure: "model server down")
        }
        running = []
        queue = []
    }

    private mutating func start(_ requestID: String, now: Double) {
        guard let work = jobs[requestID]?.work else { return }
        jobs[requestID]?.startedAt = now
        running.insert(requestID)
        accounting.queueWaitMs += Int(((now - jobs[requestID]!.admittedAt) * 1000).rounded())
        commands.append(.run(ModelCall(requestID: requestID, model: model, prompt: Self.prompt(of: work),
                                       maxTokens: max(1, work.outputTokens))))
    }

    private mutating func startNext(now: Double) {
        while running.count < slots, !queue.isEmpty {
            start(queue.removeFirst(), now: now)
        }
    }

    /// Drops answered jobs older than `cutoff` (de-duplication memory is bounded).
    private mutating func forget(before cutoff: Double) {
        guard jobs.count > 256 else { return }
        jobs = jobs.filter { $0.value.doneAt.map { $0 >= cutoff } ?? true }
    }

    /// The prompt of a request that carries none (its task names no prompt file): about `tokens`
    /// tokens of plain text, so that the server still does a prefill of the task's size.
    /// What the server is sent for `work`: its prompt, or filler of its size.
    static func prompt(of work: ComputeWork) -> String { work.prompt ?? fillerPrompt(tokens: work.inputTokens) }

    public static func fillerPrompt(tokens: Int) -> String {
        let sentence = "The vehicle ahead slows down near the junction while a cyclist waits at the crossing. "
        // About 17 tokens per sentence for a LLaMA-style tokenizer.
        let count = max(1, (tokens + 16) / 17)
        return "Summarise this scene report in one sentence. " + String(repeating: sentence, count: count)
    }
}

/// What a real model server produced for one job, as recorded in the run's `outputs` table.
public struct ModelOutput: Sendable, Equatable {
    public var model: String
    public var prompt: String
    public var answer: String
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// Wall seconds, as measured.
    public var timeToFirstToken: Double?
    public var wallSeconds: Double
    /// Generated tokens per second after the first (wall).
    public var decodeRate: Double?
    /// Emulated: when the call started, and its compute time (`timeScale` × wall).
    public var startedAt: Double
    public var compute: Double
    /// Emulated seconds the answer came later than its due instant (the emulation could not hold it).
    public var late: Double

    public init(call: ModelCallResult, work: ComputeWork, model: String, startedAt: Double, compute: Double, late: Double) {
        self.model = model
        prompt = ModelServerCompute.prompt(of: work)
        answer = call.answer
        promptTokens = call.promptTokens
        completionTokens = call.completionTokens
        timeToFirstToken = call.timeToFirstToken
        wallSeconds = call.wallSeconds
        decodeRate = call.decodeRate
        self.startedAt = startedAt
        self.compute = compute
        self.late = late
    }
}
