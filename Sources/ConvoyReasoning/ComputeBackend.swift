/// What a node asks its compute to run: one attempt of a request. Attempts of the same request
/// share one job (a failover re-send reaching the same node is not computed twice).
public struct ComputeWork: Sendable, Hashable {
    public var requestID: String
    public var attempt: Int
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    /// The request's real prompt (a task with a prompt file); a real model server is sent it.
    public var prompt: String?
    /// One stage of a split request (nil: the whole model).
    public var stage: SplitStage?

    public init(requestID: String, attempt: Int, model: String, inputTokens: Int, outputTokens: Int, prompt: String? = nil,
                stage: SplitStage? = nil) {
        self.stage = stage
        self.requestID = requestID
        self.attempt = attempt
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.prompt = prompt
    }
}

/// A job the compute finished, for every attempt still waiting on it.
public struct ComputeCompletion: Sendable, Equatable {
    public var requestID: String
    /// The attempts that wanted it (not withdrawn), ascending.
    public var attempts: [Int]
    public var queueWait: Double
    public var computeTime: Double
    /// Nil when it succeeded; otherwise why it failed (a real server's error).
    public var failure: String?
    /// What a real model server generated (nil for the modelled backend).
    public var output: ModelOutput?
    /// Whether this is the first report of `output` (a re-send answered later from the same job
    /// gets it again, but it is recorded once).
    public var outputIsNew = true

    public init(requestID: String, attempts: [Int], queueWait: Double, computeTime: Double, failure: String? = nil,
                output: ModelOutput? = nil) {
        self.requestID = requestID
        self.attempts = attempts
        self.queueWait = queueWait
        self.computeTime = computeTime
        self.failure = failure
        self.output = output
    }
}

extension ComputeCompletion {
    /// The generated answer to send back ("" when it failed or was modelled).
    public var answer: String { failure == nil ? output?.answer ?? "" : "" }

    /// The reply's result size: 0 on failure, the answer's bytes when there is one, else `declared`.
    public func resultBytes(declared: UInt32) -> UInt32 {
        failure != nil ? 0 : answer.isEmpty ? declared : UInt32(clamping: answer.utf8.count)
    }
}

/// The answer to `ComputeBackend.admit`.
public enum ComputeAdmission: Sendable, Equatable {
    /// A new job. `wakeAt`: when the backend expects to have it done, if it knows (the modelled
    /// backend does; a real server does not, and delivers a `finished` event instead).
    case admitted(wakeAt: Double?)
    /// The attempt joined the job already admitted for its request.
    case joined(wakeAt: Double?)
    /// The queue is full.
    case rejected
    /// This compute cannot run the model (unknown, or does not fit in memory).
    case unsupported(String)
}

/// What the compute did, for the node's counters: compute admitted minus what cancels gave back,
/// queue waits, jobs.
public struct ComputeAccounting: Sendable, Equatable {
    /// Milliseconds of compute admitted (each job rounded), minus what cancels gave back.
    public var computeMs = 0
    /// Milliseconds jobs waited for a slot (each job rounded).
    public var queueWaitMs = 0
    public var jobs = 0
    /// Attempts withdrawn while waiting for their job.
    public var cancelled = 0

    public init() {}
}

/// A node's compute: the roofline model (`ModelledCompute`) or a real model server behind an HTTP
/// API (`ModelServerCompute`). Pure from the node's point of view: the node passes the time, and
/// learns of finished jobs only through `completions(now:)` — after a wake-up the backend asked
/// for, or after the shell reported a call's end (`finished(_:now:)`) — never from a prediction
/// made at admission.
public protocol ComputeBackend: Sendable {
    /// Parallel jobs it runs.
    var slots: Int { get }
    /// Slots busy and jobs waiting at `now` (advertised in beacons).
    func busy(now: Double) -> Int
    func waiting(now: Double) -> Int
    /// When a new job (of the whole model, or of one split `stage`) would finish if admitted now;
    /// nil if it would be rejected, cannot run here, or the backend cannot tell.
    func estimatedFinish(model: String, inputTokens: Int, outputTokens: Int, stage: SplitStage?, now: Double) -> Double?
    /// Whether a job for `requestID` was admitted (and is still remembered, for de-duplication).
    func hasJob(_ requestID: String) -> Bool
    mutating func admit(_ work: ComputeWork, now: Double) -> ComputeAdmission
    /// Withdraws one attempt. The job itself is dropped, and its compute given back where possible,
    /// only when no other attempt waits for it. Returns whether the attempt was waiting.
    mutating func cancel(requestID: String, attempt: Int, now: Double) -> Bool
    /// Jobs done by `now` with attempts waiting on them; each is reported once.
    mutating func completions(now: Double) -> [ComputeCompletion]
    var accounting: ComputeAccounting { get }
    /// Calls for the shell to make or stop (a real server); each is returned once.
    mutating func takeCommands() -> [ComputeCommand]
    /// A call ended (the shell measured it); returns when its answer is due, nil if nobody wants it.
    mutating func finished(_ result: ModelCallResult, now: Double) -> Double?
    /// The model server went down (an injected `backend-down` fault: everything in flight fails and
    /// nothing is admitted) or came back.
    mutating func setServerDown(_ down: Bool, now: Double)
}

extension ComputeBackend {
    /// When a new job of the whole model would finish if admitted now.
    public func estimatedFinish(model: String, inputTokens: Int, outputTokens: Int, now: Double) -> Double? {
        estimatedFinish(model: model, inputTokens: inputTokens, outputTokens: outputTokens, stage: nil, now: now)
    }

    /// When `work` would finish if admitted now.
    public func estimatedFinish(_ work: ComputeWork, now: Double) -> Double? {
        estimatedFinish(model: work.model, inputTokens: work.inputTokens, outputTokens: work.outputTokens, stage: work.stage, now: now)
    }

    public mutating func takeCommands() -> [ComputeCommand] { [] }
    public mutating func finished(_ result: ModelCallResult, now: Double) -> Double? { nil }
    public mutating func setServerDown(_ down: Bool, now: Double) {}
}

/// The roofline compute model (`ComputeModel`) on a device with slots and a bounded queue
/// (`ComputeServer`), as a backend: it knows each job's finish at admission, and asks to be woken
/// then.
public struct ModelledCompute: ComputeBackend {
    public private(set) var server: ComputeServer
    /// Attempts waiting on each job, by request id.
    private var waiters: [String: Set<Int>] = [:]
    public private(set) var accounting = ComputeAccounting()

    public init(device: DeviceProfile, slots: Int, queueCapacity: Int, measured: MeasuredProfile? = nil) {
        server = ComputeServer(device: device, slots: slots, queueCapacity: queueCapacity, measured: measured)
    }

    public var slots: Int { server.slots }
    public func busy(now: Double) -> Int { server.busy(now: now) }
    public func waiting(now: Double) -> Int { server.waiting(now: now) }
    public func hasJob(_ requestID: String) -> Bool { server.job(requestID) != nil }

    public func estimatedFinish(model: String, inputTokens: Int, outputTokens: Int, stage: SplitStage?, now: Double) -> Double? {
        server.estimatedFinish(model: model, inputTokens: inputTokens, outputTokens: outputTokens, stage: stage, now: now)
    }

    public mutating func admit(_ work: ComputeWork, now: Double) -> ComputeAdmission {
        switch server.admit(requestID: work.requestID, model: work.model, inputTokens: work.inputTokens,
                            outputTokens: work.outputTokens, stage: work.stage, now: now) {
        case .admitted(let job):
            accounting.jobs += 1
            accounting.computeMs += Self.ms(job.computeTime)
            accounting.queueWaitMs += Self.ms(job.queueWait)
            waiters[work.requestID, default: []].insert(work.attempt)
            return .admitted(wakeAt: job.finishAt)
        case .duplicate(let job):
            waiters[work.requestID, default: []].insert(work.attempt)
            return .joined(wakeAt: max(now, job.finishAt))
        case .rejected:
            return .rejected
        case .unsupported(let why):
            return .unsupported(why)
        }
    }

    public mutating func cancel(requestID: String, attempt: Int, now: Double) -> Bool {
        guard waiters[requestID]?.remove(attempt) != nil else { return false }
        accounting.cancelled += 1
        if waiters[requestID]!.isEmpty {
            waiters[requestID] = nil
            accounting.computeMs -= Self.ms(server.cancel(requestID: requestID, now: now))
        }
        return true
    }

    public mutating func completions(now: Double) -> [ComputeCompletion] {
        var done: [ComputeCompletion] = []
        for (requestID, attempts) in waiters {
            guard let job = server.job(requestID), job.finishAt <= now else { continue }
            waiters[requestID] = nil
            done.append(ComputeCompletion(requestID: requestID, attempts: attempts.sorted(), queueWait: job.queueWait,
                                          computeTime: job.computeTime))
        }
        return done.sorted { $0.requestID < $1.requestID }
    }

    private static func ms(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }
}
