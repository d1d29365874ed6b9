import ConvoyCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire

/// Expert models (the paper's horizontal collaboration): a task with `subtasks:` is split by the
/// vehicle into one subtask per expert, each sent over V2V to a neighbour holding that expert (the
/// best V2V rate first), else done on board if the vehicle holds it, else sent to a server. Each
/// subtask is a request of the ledger, so a holder that drives out of range or falls silent is
/// detected and its subtask re-sent to the next candidate. The parent completes when every
/// subtask has, and fails or expires with the first that does; subtasks are recorded as attempts
/// of their parent (numbered across its subtasks, the expert in `detail`).
extension VehicleCore {
    struct Decomposition {
        var pending: Set<String>
        /// The parent ended (a subtask failed or expired); the others are being withdrawn.
        var ended = false
        var replies: [ReplyOutcome] = []
        /// Attempts recorded under the parent, and each subtask attempt's number there.
        var attempts = 0
        var numbers: [AttemptKey: Int] = [:]
    }

    /// The path recorded for a request answered by experts' subtasks.
    public static let expertsPath = "experts"

    mutating func openDecomposed(_ spec: RequestSpec, task: TaskSpec, now: Double, paths: PathContext) {
        var decomposition = Decomposition(pending: [])
        var subtasks: [RequestSpec] = []
        for (i, name) in task.subtasks.enumerated() {
            guard let expert = scenario.experts.first(where: { $0.name == name }) else { continue }
            var sub = spec
            sub.requestID = "\(spec.requestID).\(i + 1)"
            sub.task = "\(task.name)/\(name)"
            sub.model = expert.model
            sub.sharingKey = nil
            subtaskOf[sub.requestID] = (spec.requestID, expert)
            decomposition.pending.insert(sub.requestID)
            subtasks.append(sub)
        }
        decompositions[spec.requestID] = decomposition
        for sub in subtasks { openInLedger(sub, now: now, paths: paths) }
    }

    /// The request id and attempt number a ledger attempt is recorded under (a subtask's: its
    /// parent's, numbered in order of sending), and the detail it adds.
    mutating func recordedAttempt(_ requestID: String, _ attempt: Int) -> (requestID: String, attempt: Int, detail: String?) {
        guard let (parent, expert) = subtaskOf[requestID], var d = decompositions[parent] else { return (requestID, attempt, nil) }
        let key = AttemptKey(requestID, attempt)
        if d.numbers[key] == nil {
            d.attempts += 1
            d.numbers[key] = d.attempts
            decompositions[parent] = d
        }
        return (parent, d.numbers[key]!, "expert \(expert.name)")
    }

    /// The parent a subtask's price is charged to.
    func costBearer(of requestID: String) -> String { subtaskOf[requestID]?.parent ?? requestID }

    /// A subtask ended: the parent completes with the last, or ends with the first that failed
    /// or expired (the others are withdrawn). The decomposition is kept until its last subtask has
    /// ended, so that every subtask attempt is recorded under the parent.
    mutating func subtaskFinished(_ done: RequestLedger.Finished, now: Double) {
        guard let (parent, expert) = subtaskOf.removeValue(forKey: done.requestID), var d = decompositions[parent] else { return }
        d.pending.remove(done.requestID)
        decompositions[parent] = d
        if d.ended { return forgetIfDone(parent) }
        guard done.status == .completed, let reply = done.reply else {
            decompositions[parent]?.ended = true
            let reason = "expert \(expert.name): \(done.reason ?? done.status.rawValue)"
            closeParent(parent, status: done.status, reason: reason, attempts: d.attempts, reply: nil, at: done.at)
            for sub in d.pending.sorted() { apply(ledger.close(sub, reason: "sibling subtask ended", now: now), now: now) }
            return forgetIfDone(parent)
        }
        d.replies.append(reply)
        decompositions[parent] = d
        guard d.pending.isEmpty else { return }
        decompositions[parent] = nil
        let servers = Array(Set(d.replies.map(\.servedBy))).sorted()
        let merged = ReplyOutcome(kind: .completed, servedBy: servers.joined(separator: "+"), path: Self.expertsPath,
                                  queueWait: d.replies.map(\.queueWait).max() ?? 0, computeTime: d.replies.map(\.computeTime).max() ?? 0,
                                  answer: d.replies.map(\.answer).filter { !$0.isEmpty }.joined(separator: "\n"))
        closeParent(parent, status: .completed, reason: nil, attempts: d.attempts, reply: merged, at: done.at)
    }

    private mutating func forgetIfDone(_ parent: String) {
        if decompositions[parent]?.pending.isEmpty == true { decompositions[parent] = nil }
    }

    private mutating func closeParent(_ parent: String, status: RequestStatus, reason: String?, attempts: Int, reply: ReplyOutcome?,
                                      at: Double) {
        guard let open = openRecords[parent] else { return }
        apply([.finished(.init(requestID: parent, status: status, at: at, createdAt: open.createdAt, attempts: attempts, reason: reason,
                               reply: reply))], now: at)
    }

    /// The routes for a subtask of `expert`: neighbours in V2V range holding it (best rate first),
    /// on board if this vehicle holds it, then the servers the policy ranks (over an RSU or the macro cell).
    static func expertRoutes(_ expert: ExpertSpec, vehicle: String, seed: UInt64, context: PathContext, ranked: [Route]) -> [Route] {
        let holders = context.usableNeighbours.filter { $0.neighbour.canCompute && expert.holds($0.neighbour.id, seed: seed) }
            .map { Route(.v2v, $0.neighbour.id) }
        let onboard = expert.holds(vehicle, seed: seed) ? context.onboardRoute.map { [$0] } ?? [] : []
        let servers = ranked.filter { $0.path == .rsu || $0.path == .macro }
        return holders + onboard + servers
    }
}
