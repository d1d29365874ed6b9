/// Where a node that received a request sends it: its own compute, the next hop (RSU → edge,
/// edge → cloud), or back with a refusal. Pure.
///
/// 1. A request already admitted here (a failover re-send reaching the same server) is the same job.
/// 2. Own compute if it would finish by the attempt's reply-by time.
/// 3. Otherwise the next hop, if there is one and it is alive.
/// 4. Otherwise own compute even if late, if there is room.
/// 5. Otherwise a refusal: `rejected` (full: try elsewhere now) or `failed` (nothing here can serve it).
public enum ServingDecision: Sendable, Equatable {
    case serve(ComputeServer.Job, duplicate: Bool)
    case forward
    case rejected(String)
    case failed(String)

    public static func decide(server: inout ComputeServer?, nextHopAvailable: Bool, requestID: String, model: String,
                              inputTokens: Int, outputTokens: Int, replyBy: Double, now: Double) -> ServingDecision {
        if let job = server?.job(requestID) { return .serve(job, duplicate: true) }
        if let finish = server?.estimatedFinish(model: model, inputTokens: inputTokens, outputTokens: outputTokens, now: now),
           finish <= replyBy, case .admitted(let job)? = server?.admit(requestID: requestID, model: model, inputTokens: inputTokens,
                                                                        outputTokens: outputTokens, now: now) {
            return .serve(job, duplicate: false)
        }
        if nextHopAvailable { return .forward }
        switch server?.admit(requestID: requestID, model: model, inputTokens: inputTokens, outputTokens: outputTokens, now: now) {
        case .admitted(let job)?: return .serve(job, duplicate: false)
        case .duplicate(let job)?: return .serve(job, duplicate: true)
        case .rejected?: return .rejected("full")
        case .unsupported(let why)?: return .failed(why)
        case nil: return .failed("no-compute-and-next-hop-unavailable")
        }
    }
}
