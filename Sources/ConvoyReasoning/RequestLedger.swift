import ConvoyWire

/// How a vehicle reaches compute.
public enum AccessPath: String, Sendable, Hashable, Codable {
    /// Over cellular to an RSU in range, which serves the request or forwards it to its edge server.
    case rsu
    /// Over the macro cell to the cloud.
    case macro
}

/// Where an attempt goes: the access path and the node addressed on it.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    public var path: AccessPath
    public var target: String

    public init(_ path: AccessPath, _ target: String) {
        self.path = path
        self.target = target
    }

    public var description: String { "\(path.rawValue):\(target)" }
}

/// What a vehicle wants computed.
public struct RequestSpec: Sendable, Equatable {
    public var requestID: String
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    public var payloadBytes: Int
    /// Seconds from creation to the deadline.
    public var deadline: Double

    public init(requestID: String, model: String, inputTokens: Int, outputTokens: Int, payloadBytes: Int, deadline: Double) {
        self.requestID = requestID
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.deadline = deadline
    }
}

/// What a server answered to an attempt.
public struct ReplyOutcome: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case completed, rejected, failed }
    public var kind: Kind
    public var servedBy: String
    /// Where it was served, e.g. "rsu", "rsu>edge", "rsu>edge>cloud", "macro>cloud".
    public var path: String
    public var queueWait: Double
    public var computeTime: Double
    public var detail: String

    public init(kind: Kind, servedBy: String, path: String, queueWait: Double = 0, computeTime: Double = 0, detail: String = "") {
        self.kind = kind
        self.servedBy = servedBy
        self.path = path
        self.queueWait = queueWait
        self.computeTime = computeTime
        self.detail = detail
    }
}

/// The failover state machine of one vehicle: every request it opens ends in exactly one terminal
/// state (completed, failed with a reason, or expired), and its path history is reported attempt
/// by attempt. Pure: time and the candidate routes (best first, from liveness and geometry) are
/// passed in; the vehicle carries out the returned actions.
///
/// Rules:
/// - An attempt goes to the best candidate not yet tried for this request; if every candidate was
///   tried, they may be tried again after `retryBackoff`. With no candidate at all the request
///   waits (and expires at its deadline if none appears).
/// - An attempt ends when its reply arrives, when its target is declared dead or leaves range
///   (`targetLost`), or after `attemptTimeout` without a reply; the request is then re-sent.
/// - Only the reply to the current attempt counts: late replies to earlier attempts are discarded,
///   so a result is delivered at most once.
/// - At the deadline the request expires; after `maxAttempts` failed attempts it fails.
public struct RequestLedger: Sendable {
    public struct Config: Sendable, Equatable {
        public var attemptTimeout: Double
        public var maxAttempts: Int
        public var retryBackoff: Double

        public init(attemptTimeout: Double = 2.5, maxAttempts: Int = 8, retryBackoff: Double = 0.25) {
            self.attemptTimeout = attemptTimeout
            self.maxAttempts = maxAttempts
            self.retryBackoff = retryBackoff
        }
    }

    public enum Action: Sendable, Equatable {
        /// Send attempt `attempt` of the request on `route`; the server should answer by `replyBy`.
        case send(spec: RequestSpec, attempt: Int, route: Route, replyBy: Double)
        /// An attempt ended (outcome: replied, rejected, failed, target-dead, out-of-range, timeout, deadline, abandoned).
        case attemptEnded(requestID: String, attempt: Int, route: Route, sentAt: Double, endedAt: Double, outcome: String, detail: String?)
        /// The request reached its terminal state.
        case finished(Finished)
    }

    public struct Finished: Sendable, Equatable {
        public var requestID: String
        public var status: RequestStatus
        public var at: Double
        public var createdAt: Double
        public var attempts: Int
        public var reason: String?
        public var reply: ReplyOutcome?
    }

    struct Attempt {
        var number: Int
        var route: Route
        var sentAt: Double
        var replyBy: Double
    }

    struct Open {
        var spec: RequestSpec
        var createdAt: Double
        var deadlineAt: Double
        var attempts = 0
        var current: Attempt?
        var tried: Set<String> = []
        var retryAt: Double?
        var lastOutcome: String?
    }

    public let config: Config
    private var open: [String: Open] = [:]
    /// Replies that arrived for an attempt that was no longer current, or a request already finished.
    public private(set) var discardedReplies = 0

    public init(config: Config = Config()) { self.config = config }

    public var openCount: Int { open.count }
    public var openRequestIDs: [String] { open.keys.sorted() }

    /// The earliest instant at which `tick(now:candidates:)` has something to do (an attempt's
    /// reply-by, a deadline, a retry), if any.
    public var nextDeadline: Double? {
        open.values.map { r in min(r.deadlineAt, r.current?.replyBy ?? .infinity, r.retryAt ?? .infinity) }.min()
    }

    /// The nodes that attempts are in flight to.
    public var targetsInFlight: Set<String> {
        Set(open.values.compactMap { $0.current?.route.target })
    }

    /// Requests whose current attempt is in flight to `target`.
    public func inFlight(to target: String) -> [String] {
        open.values.filter { $0.current?.route.target == target }.map(\.spec.requestID).sorted()
    }

    public mutating func open(_ spec: RequestSpec, now: Double, candidates: [Route]) -> [Action] {
        precondition(open[spec.requestID] == nil, "request ids are unique")
        var request = Open(spec: spec, createdAt: now, deadlineAt: now + spec.deadline)
        var actions: [Action] = []
        dispatch(&request, now: now, candidates: candidates, into: &actions)
        store(request, now: now, actions: &actions)
        return actions
    }

    public mutating func replied(requestID: String, attempt: Int, outcome: ReplyOutcome, now: Double, candidates: [Route]) -> [Action] {
        guard var request = open[requestID], let current = request.current, current.number == attempt else {
            discardedReplies += 1
            return []
        }
        var actions: [Action] = []
        switch outcome.kind {
        case .completed:
            actions.append(.attemptEnded(requestID: requestID, attempt: attempt, route: current.route, sentAt: current.sentAt,
                                         endedAt: now, outcome: "replied", detail: nil))
            open[requestID] = nil
            actions.append(.finished(Finished(requestID: requestID, status: .completed, at: now, createdAt: request.createdAt,
                                              attempts: request.attempts, reason: nil, reply: outcome)))
            return actions
        case .rejected, .failed:
            let label = outcome.kind == .rejected ? "rejected" : "failed"
            end(&request, outcome: label, detail: outcome.detail.isEmpty ? nil : outcome.detail, now: now, into: &actions)
            dispatch(&request, now: now, candidates: candidates, into: &actions)
        }
        store(request, now: now, actions: &actions)
        return actions
    }

    /// `target` is dead, or the vehicle left its range: re-send what was in flight to it.
    public mutating func targetLost(_ target: String, outcome: String, now: Double, candidates: [Route]) -> [Action] {
        var actions: [Action] = []
        for id in inFlight(to: target) {
            guard var request = open[id] else { continue }
            end(&request, outcome: outcome, detail: nil, now: now, into: &actions)
            dispatch(&request, now: now, candidates: candidates.filter { $0.target != target }, into: &actions)
            store(request, now: now, actions: &actions)
        }
        return actions
    }

    /// Advances time: deadlines, attempt time-outs, waiting requests.
    public mutating func tick(now: Double, candidates: [Route]) -> [Action] {
        var actions: [Action] = []
        for id in open.keys.sorted() {
            guard var request = open[id] else { continue }
            if now >= request.deadlineAt {
                if request.current != nil { end(&request, outcome: "deadline", detail: nil, now: now, into: &actions) }
                open[id] = nil
                actions.append(.finished(Finished(requestID: id, status: .expired, at: now, createdAt: request.createdAt,
                                                  attempts: request.attempts, reason: request.lastOutcome ?? "no-path", reply: nil)))
                continue
            }
            if let current = request.current, now >= current.replyBy {
                end(&request, outcome: "timeout", detail: nil, now: now, into: &actions)
                dispatch(&request, now: now, candidates: candidates, into: &actions)
            } else if request.current == nil, request.retryAt.map({ now >= $0 }) ?? true {
                dispatch(&request, now: now, candidates: candidates, into: &actions)
            }
            store(request, now: now, actions: &actions)
        }
        return actions
    }

    /// Ends every open request as failed with `reason` (the run ended, the vehicle left the trace).
    public mutating func closeAll(reason: String, now: Double) -> [Action] {
        var actions: [Action] = []
        for id in open.keys.sorted() {
            guard var request = open[id] else { continue }
            if request.current != nil { end(&request, outcome: "abandoned", detail: reason, now: now, into: &actions) }
            actions.append(.finished(Finished(requestID: id, status: .failed, at: now, createdAt: request.createdAt,
                                              attempts: request.attempts, reason: reason, reply: nil)))
        }
        open.removeAll()
        return actions
    }

    // MARK: -

    private func end(_ request: inout Open, outcome: String, detail: String?, now: Double, into actions: inout [Action]) {
        guard let current = request.current else { return }
        actions.append(.attemptEnded(requestID: request.spec.requestID, attempt: current.number, route: current.route,
                                     sentAt: current.sentAt, endedAt: now, outcome: outcome, detail: detail))
        request.tried.insert(current.route.target)
        request.current = nil
        request.lastOutcome = outcome
    }

    private func dispatch(_ request: inout Open, now: Double, candidates: [Route], into actions: inout [Action]) {
        guard request.current == nil else { return }
        if request.attempts >= config.maxAttempts {
            request.retryAt = .infinity  // marks it for failing in store()
            return
        }
        var route = candidates.first { !request.tried.contains($0.target) }
        if route == nil, !candidates.isEmpty {
            // Everything was tried: wait a little, then start over.
            if let retryAt = request.retryAt, now >= retryAt {
                request.tried.removeAll()
                route = candidates.first
            } else {
                if request.retryAt == nil || request.retryAt! < now { request.retryAt = now + config.retryBackoff }
                return
            }
        }
        guard let route else { return }  // no path now: waits for one on the next tick
        request.attempts += 1
        request.retryAt = nil
        let replyBy = min(request.deadlineAt, now + config.attemptTimeout)
        request.current = Attempt(number: request.attempts, route: route, sentAt: now, replyBy: replyBy)
        actions.append(.send(spec: request.spec, attempt: request.attempts, route: route, replyBy: replyBy))
    }

    private mutating func store(_ request: Open, now: Double, actions: inout [Action]) {
        if request.current == nil, request.retryAt == .infinity {
            open[request.spec.requestID] = nil
            actions.append(.finished(Finished(requestID: request.spec.requestID, status: .failed, at: now,
                                              createdAt: request.createdAt, attempts: request.attempts,
                                              reason: "attempts-exhausted (last: \(request.lastOutcome ?? "none"))", reply: nil)))
        } else {
            open[request.spec.requestID] = request
        }
    }
}
