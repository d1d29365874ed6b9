import ConvoyWire

/// One request, as each layer holds it: the scenario's task (`TaskSpec`), the ledger's
/// `RequestSpec`, the wire's `InferenceRequest`, the compute's `ComputeWork` and the recorder's
/// `RequestRecord`. Where they say the same thing, each is made from the one before it here, and
/// nowhere else field by field.
extension RequestSpec {
    /// An instance of `task`, shared under `sharingKey` if the task is shareable.
    public init(requestID: String, task: TaskSpec, sharingKey: String?, prompt: String = "") {
        self.init(requestID: requestID, task: task.name, model: task.model, inputTokens: task.inputTokens,
                  outputTokens: task.outputTokens, payloadBytes: task.payloadBytes, resultBytes: task.resultBytes,
                  deadline: task.deadline, sharingKey: task.shareable ? sharingKey : nil, prompt: prompt)
        pipeline = task.pipeline
    }
}

extension InferenceRequest {
    /// Attempt `attempt` of `spec`, from `vehicleID`, to be answered by `replyBy`.
    public init(_ spec: RequestSpec, attempt: Int, vehicleID: String, replyBy: Double) {
        self.init(requestID: spec.requestID, attempt: UInt16(clamping: attempt), vehicleID: vehicleID, model: spec.model,
                  inputTokens: UInt32(clamping: spec.inputTokens), outputTokens: UInt32(clamping: spec.outputTokens),
                  payloadBytes: UInt32(clamping: spec.payloadBytes), resultBytes: UInt32(clamping: spec.resultBytes),
                  deadline: replyBy, prompt: spec.prompt, splitAt: UInt16(clamping: spec.split ?? 0))
    }
}

extension ComputeWork {
    /// The compute an attempt asks for.
    public init(_ request: InferenceRequest) {
        self.init(requestID: request.requestID, attempt: Int(request.attempt), model: request.model,
                  inputTokens: Int(request.inputTokens), outputTokens: Int(request.outputTokens),
                  prompt: request.prompt.isEmpty ? nil : request.prompt,
                  stage: request.sliceEnd > 0 ? .slice(Int(request.splitAt)..<Int(request.sliceEnd))
                      : request.splitAt > 0 ? .upper(from: Int(request.splitAt)) : nil)
    }
}

extension RequestRecord {
    /// The row of `spec` as it opens at `createdAt` (no terminal state yet).
    public init(opening spec: RequestSpec, vehicleID: String, at createdAt: Double) {
        self.init(requestID: spec.requestID, vehicleID: vehicleID, createdAt: createdAt, deadlineAt: createdAt + spec.deadline,
                  model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens, payloadBytes: spec.payloadBytes)
        task = spec.task
        cost = 0
    }
}

extension OutputRecord {
    /// The `outputs` row of a job a real model server ran for `servedBy`.
    public init(_ output: ModelOutput, of job: ComputeCompletion, servedBy: String) {
        self.init(requestID: job.requestID, servedBy: servedBy, model: output.model, prompt: output.prompt, answer: output.answer,
                  promptTokens: output.promptTokens, completionTokens: output.completionTokens,
                  ttftMs: output.timeToFirstToken.map { $0 * 1000 }, wallMs: output.wallSeconds * 1000,
                  decodeTokensPerS: output.decodeRate, startedAt: output.startedAt, computeMs: output.compute * 1000,
                  lateMs: output.late * 1000, failure: job.failure)
    }
}
