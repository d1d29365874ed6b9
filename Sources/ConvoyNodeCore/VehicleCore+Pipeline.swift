import ConvoyCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// A model split across vehicles (the paper's split models, horizontal): a task with `pipeline: N`
/// runs on a chain of N neighbours, each holding an even slice of the layers. The requester sends
/// the request to the first (a neighbour with a free slot, best V2V rate first; each next stage
/// the nearest holder within 80 % of the V2V range of the one before); each stage computes its
/// slice on board — prefill and decode — and hands the activations to the next over V2V; the last
/// answers the requester. One device leaving or failing breaks the chain: a stage that cannot
/// reach the next tells the requester at once, otherwise the attempt times out; either way the
/// ledger re-plans onto other neighbours (a new chain from another first hop) or falls back to an
/// RSU. The chain is recorded in the attempt's detail.
extension VehicleCore {
    /// The routes for a pipelined request: each usable neighbour with a free slot (best V2V rate
    /// first) from which a whole chain can be planned, then the servers.
    static func pipelineRoutes(stages: Int, context: PathContext, ranked: [Route]) -> [Route] {
        let holders = stageHolders(context)
        let firsts = holders.filter { chain(from: $0.id, stages: stages, holders: holders, context: context) != nil }
        return firsts.map { Route(.v2v, $0.id) } + ranked.filter { $0.path == .rsu || $0.path == .macro }
    }

    /// The share of the V2V range within which consecutive stages are planned.
    static let chainReach = 0.8

    /// Neighbours in V2V range with a free on-board slot, best rate first.
    static func stageHolders(_ context: PathContext) -> [NeighbourView] {
        var context = context
        context.neighbourComputeTime = 0  // any holder with a free slot can take a stage
        return context.usableNeighbours.filter { $0.neighbour.freeSlots > 0 }.map(\.neighbour)
    }

    /// A chain of `stages` holders starting at `first`, each stage within `chainReach` of the V2V
    /// range of the one before it (the nearest such holder next; the margin allows for the vehicles
    /// moving while the stages compute); nil if there is none.
    static func chain(from first: String, stages: Int, holders: [NeighbourView], context: PathContext) -> [String]? {
        guard var last = holders.first(where: { $0.id == first }) else { return nil }
        var chain = [last]
        while chain.count < stages {
            let reach = chainReach * context.v2v.rangeM
            let next = holders.filter { h in !chain.contains { $0.id == h.id } && h.position.distance(to: last.position) <= reach }
                .min { ($0.position.distance(to: last.position), $0.id) < ($1.position.distance(to: last.position), $1.id) }
            guard let next else { return nil }
            chain.append(next)
            last = next
        }
        return chain.map(\.id)
    }

    /// Modelled compute of the whole pipeline on idle on-board devices (every vehicle has the same).
    static func pipelineTime(for spec: RequestSpec, onboard: ComputeSpec?) -> Double? {
        guard spec.pipeline > 0, let device = onboard?.profile, let model = ModelProfile.catalog[spec.model] else { return nil }
        var from = 0, total = 0.0
        for remaining in stride(from: spec.pipeline, to: 0, by: -1) {
            let slice = PipelinePlan.slice(from: from, remaining: remaining, layers: model.layers)
            total += SplitStage.slice(slice).time(model: model, device: device, inputTokens: spec.inputTokens, outputTokens: spec.outputTokens)
            from = slice.upperBound
        }
        return total
    }

    /// The first stage's request of an attempt through `first`, with the chain planned from it
    /// (`chain(from:)`; `first` alone, holding every layer, if none can be planned any more), and
    /// the chain as the attempt records it.
    func pipelined(_ request: InferenceRequest, stages: Int, first: String, now: Double) -> (InferenceRequest, String) {
        let context = pathContext(now: now)
        let chain = Self.chain(from: first, stages: stages, holders: Self.stageHolders(context), context: context) ?? [first]
        var request = request
        let layers = ModelProfile.catalog[request.model]?.layers ?? 1
        request.splitAt = 0
        request.sliceEnd = UInt16(clamping: PipelinePlan.slice(from: 0, remaining: chain.count, layers: layers).upperBound)
        request.chain = Array(chain.dropFirst())
        return (request, "pipeline " + chain.joined(separator: ">"))
    }

    /// A pipeline stage reached this vehicle: its slice runs on board (a job of its own: the same
    /// request may come back for another slice after a re-plan), or the requester hears at once
    /// that it cannot.
    mutating func servePipelineStage(_ request: InferenceRequest, now: Double) {
        var work = ComputeWork(request)
        work.requestID = "\(request.requestID)@\(request.attempt):\(request.splitAt)"
        var refusal: String?
        switch onboard?.admit(work, now: now) {
        case .admitted(let wakeAt)?, .joined(let wakeAt)?:
            onboardClients[AttemptKey(work.requestID, work.attempt)] = .pipelineStage(request)
            if let wakeAt { schedule(.compute, at: wakeAt) }
        case .rejected?: refusal = "full"
        case .unsupported(let why)?: refusal = why
        case nil: refusal = "no on-board compute"
        }
        out.count(refusal == nil ? "pipeline_stages_run" : "pipeline_stages_refused")
        if let refusal { pipelineFailed(request, detail: "pipeline stage at \(id): \(refusal)", now: now) }
    }

    /// This vehicle's stage is done: on to the next stage, or the answer to the requester.
    mutating func pipelineStageDone(_ request: InferenceRequest, job: ComputeCompletion, now: Double) {
        if let failure = job.failure { return pipelineFailed(request, detail: "pipeline stage at \(id): \(failure)", now: now) }
        let route = request.route + [id]
        guard let next = request.chain.first else {
            let reply = InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .completed, servedBy: id, route: route,
                                       queueWait: job.queueWait, computeTime: job.computeTime, resultBytes: request.resultBytes)
            return sendDirect(reply, to: request.vehicleID, now: now)
        }
        guard neighbourReachable(next, from: position(at: now), now: now), let model = ModelProfile.catalog[request.model] else {
            out.count("pipeline_broken")
            return pipelineFailed(request, detail: "pipeline broken: \(next) unreachable from \(id)", now: now)
        }
        var on = request
        on.route = route
        on.splitAt = request.sliceEnd
        on.sliceEnd = UInt16(clamping: PipelinePlan.slice(from: Int(request.sliceEnd), remaining: request.chain.count,
                                                          layers: model.layers).upperBound)
        on.chain = Array(request.chain.dropFirst())
        on.payloadBytes = UInt32(clamping: PipelinePlan.hopBytes(model: model, inputTokens: Int(request.inputTokens),
                                                                 outputTokens: Int(request.outputTokens)))
        out.count("pipeline_handoffs")
        sendDirect(on, to: next, now: now)
    }

    private mutating func pipelineFailed(_ request: InferenceRequest, detail: String, now: Double) {
        sendDirect(InferenceReply(requestID: request.requestID, attempt: request.attempt, status: .failed, servedBy: id,
                                  route: request.route + [id], detail: detail), to: request.vehicleID, now: now)
    }
}
