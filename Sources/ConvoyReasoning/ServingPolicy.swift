/// Where a node that received a request sends it: its own compute, the next hop (RSU → edge,
/// edge → cloud, neighbour → RSU), or back with a refusal. Pure.
///
/// 1. A request already admitted here (a failover re-send reaching the same server) joins that job.
/// 2. Own compute if it would finish by the attempt's reply-by time (less `returnSlack`, the time
///    the answer needs to travel back).
/// 3. Otherwise the next hop, if there is one and it is alive.
/// 4. Otherwise own compute even if late, if `lateCompute` and there is room.
/// 5. Otherwise a refusal: `rejected` (full: try elsewhere now) or `failed` (nothing here can serve it).
public enum ServingDecision: Sendable, Equatable {
    /// Computed here: `wakeAt` as the backend answered (nil: it reports completion by itself).
    case serve(wakeAt: Double?, duplicate: Bool)
    case forward
    case rejected(String)
    case failed(String)

    public static func decide(compute: inout (any ComputeBackend)?, nextHopAvailable: Bool, work: ComputeWork, replyBy: Double,
                                                 returnSlack: Double = 0, lateCompute: Bool = true, now: Double) -> ServingDecision {
        if compute?.hasJob(work.requestID) == true, case .joined(let wakeAt)? = compute?.admit(work, now: now) {
            return .serve(wakeAt: wakeAt, duplicate: true)
        }
        if let finish = compute?.estimatedFinish(work, now: now),
           finish + returnSlack <= replyBy, case .admitted(let wakeAt)? = compute?.admit(work, now: now) {
            return .serve(wakeAt: wakeAt, duplicate: false)
        }
        if nextHopAvailable { return .forward }
        guard lateCompute else { return .failed("cannot-serve-in-time") }
        switch compute?.admit(work, now: now) {
        case .admitted(let wakeAt)?: return .serve(wakeAt: wakeAt, duplicate: false)
        case .joined(let wakeAt)?: return .serve(wakeAt: wakeAt, duplicate: true)
        case .rejected?: return .rejected("full")
        case .unsupported(let why)?: return .failed(why)
        case nil: return .failed("no-compute-and-next-hop-unavailable")
        }
    }
}
