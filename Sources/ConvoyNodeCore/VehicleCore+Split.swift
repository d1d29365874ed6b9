import ConvoyCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// Split inference (the paper's cloud-edge-end collaboration, handoff mode): a split task's
/// request runs its first k layers on the vehicle's own compute, then goes out like any request
/// carrying what those layers produced (the activations and KV cache at layer k) for a server to
/// run the rest and decode. k = 0 is today's remote path and k = all layers today's on-board path.
/// A failover re-sends the kept stage output to the next server: the on-board stage never runs
/// twice.
extension VehicleCore {
    /// A request whose on-board stage is computing.
    struct LowerStage {
        var spec: RequestSpec
        var k: Int
        var startedAt: Double
    }

    /// Opens `spec` of a split task: picks k, runs the on-board stage (if any), or opens it at once.
    mutating func openSplit(_ spec: RequestSpec, choice: SplitChoice, now: Double, paths: PathContext) {
        guard let model = ModelProfile.catalog[spec.model] else { return openInLedger(spec, now: now, paths: paths) }
        var spec = spec
        let k = splitPoint(spec, model: model, choice: choice, now: now, paths: paths)
        spec.split = k
        openRecords[spec.requestID]?.splitK = k
        if let record = openRecords[spec.requestID] { out.record(.request(record)) }
        guard k > 0 && k < model.layers else { return openInLedger(spec, now: now, paths: paths) }
        let work = ComputeWork(requestID: spec.requestID, attempt: Self.lowerStageAttempt, model: spec.model,
                               inputTokens: spec.inputTokens, outputTokens: spec.outputTokens, stage: .lower(k: k))
        switch onboard?.admit(work, now: now) {
        case .admitted(let wakeAt)?, .joined(let wakeAt)?:
            lowerStages[spec.requestID] = LowerStage(spec: spec, k: k, startedAt: now)
            onboardClients[AttemptKey(spec.requestID, Self.lowerStageAttempt)] = .lowerStage
            if let wakeAt { schedule(.compute, at: wakeAt) }
        case .rejected?, .unsupported?, nil:
            // The on-board compute cannot take the stage now: the whole model runs remotely.
            out.count("split_stage_refused")
            spec.split = 0
            openRecords[spec.requestID]?.splitK = 0
            openInLedger(spec, now: now, paths: paths)
        }
    }

    /// The attempt number the on-board stage runs under (the ledger's attempts start at 1).
    static let lowerStageAttempt = 0

    /// The on-board stage of `requestID` finished: the request goes out with the stage's output, or
    /// expires if its deadline passed meanwhile.
    mutating func lowerStageDone(_ requestID: String, job: ComputeCompletion, now: Double) {
        guard var stage = lowerStages.removeValue(forKey: requestID), let model = ModelProfile.catalog[stage.spec.model],
              let record = openRecords[requestID] else { return }
        openRecords[requestID]?.lowerStageMs = (now - stage.startedAt) * 1000
        let remaining = record.deadlineAt - now
        if job.failure != nil || remaining <= 0 {
            return closeUnsent(requestID, status: remaining <= 0 ? .expired : .failed,
                               reason: remaining <= 0 ? AttemptOutcome.deadline.rawValue : job.failure, now: now)
        }
        let bytes = SplitStage.handoffBytes(model: model, k: stage.k, inputTokens: stage.spec.inputTokens)
        openRecords[requestID]?.splitBytes = bytes
        openRecords[requestID]?.payloadBytes = bytes
        stage.spec.payloadBytes = bytes
        stage.spec.deadline = remaining
        openInLedger(stage.spec, now: now, paths: pathContext(now: now))
    }

    /// Ends a request that never reached the ledger (its on-board stage failed, or the run ended).
    mutating func closeUnsent(_ requestID: String, status: RequestStatus, reason: String?, now: Double) {
        lowerStages[requestID] = nil
        if onboardClients.removeValue(forKey: AttemptKey(requestID, Self.lowerStageAttempt)) != nil {
            _ = onboard?.cancel(requestID: requestID, attempt: Self.lowerStageAttempt, now: now)
        }
        guard let open = openRecords.removeValue(forKey: requestID) else { return }
        out.record(.request(Self.closed(open, by: .init(requestID: requestID, status: status, at: now, createdAt: open.createdAt,
                                                         attempts: 0, reason: reason, reply: nil))))
    }

    /// The layers to run on board: the scenario's fixed k, or the one `LatencyMinimisingSplit`
    /// picks from the rate to the best RSU, the server behind it and the loads advertised.
    func splitPoint(_ spec: RequestSpec, model: ModelProfile, choice: SplitChoice, now: Double, paths: PathContext) -> Int {
        switch choice {
        case .fixed(let k):
            return min(max(0, k), model.layers)
        case .auto:
            guard let lower = scenario.onboard?.profile else { return 0 }
            let best = paths.usableRSUs.max { ($0.rate, $1.rsu.id) < ($1.rate, $0.rsu.id) }
            guard let best, let rsu = map.rsu(best.rsu.id),
                  let upper = map.server(behind: rsu, model: spec.model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                         budget: ledger.config.attemptTimeout) else {
                return 0  // no server over an RSU: not split, the policy's paths (macro cell, on board, neighbours)
            }
            let request = SplitRequest(model: model, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens,
                                       payloadBytes: spec.payloadBytes, resultBytes: spec.resultBytes, lower: lower, upper: upper.device)
            let onboardWait = onboard.map { $0.busy(now: now) < $0.slots ? 0 : Double($0.waiting(now: now) + 1) * PathContext.queuePenalty }
            let context = SplitContext(upRate: best.rate, downRate: best.rate, latency: upper.latency,
                                       lowerWait: onboardWait ?? .infinity,
                                       upperWait: PathContext.queuePenalty * Double(best.rsu.queued))
            return LatencyMinimisingSplit().choose(request, mode: .handoff, context: context).k
        }
    }

    /// The routes a split request may take: one with every layer on board, only on board; one
    /// split at 0 < k < all, only the servers (over an RSU or the macro cell) — the policy's
    /// ranking of them, or by expected latency if the policy ranks none (say, local-only).
    static func splitRoutes(_ ranked: [Route], split: Int?, model: String, context: PathContext) -> [Route] {
        guard let k = split, k > 0, let layers = ModelProfile.catalog[model]?.layers else { return ranked }
        if k >= layers { return context.onboardRoute.map { [$0] } ?? [] }
        let remote = { (route: Route) in route.path == .rsu || route.path == .macro }
        let servers = ranked.filter(remote)
        return servers.isEmpty ? context.byExpectedLatency.filter(remote) : servers
    }
}
