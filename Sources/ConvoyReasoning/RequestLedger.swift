import ConvoyCore
import ConvoyWire

/// How a vehicle reaches compute.
public enum AccessPath: String, Sendable, Hashable, Codable, CaseIterable {
    /// The vehicle's own compute.
    case onboard
    /// Over V2V to a neighbour vehicle, which computes on board or relays to its RSU.
    case v2v
    /// Over cellular to an RSU in range, which serves the request or forwards it to its edge server.
    case rsu
    /// Over the macro cell to the cloud.
    case macro
}

/// Where an attempt goes: the access path and the node addressed on it. Two routes are the same
/// route when path and target are; `expectedLatency` is an annotation.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    public var path: AccessPath
    public var target: String
    /// Seconds the vehicle expects from sending to the answer, if it estimated them: an attempt
    /// expected to be slow gets a longer time-out (`RequestLedger.Config.expectedMargin`).
    public var expectedLatency: Double?

    public init(_ path: AccessPath, _ target: String, expectedLatency: Double? = nil) {
        self.path = path
        self.target = target
        self.expectedLatency = expectedLatency
    }

    public var description: String { "\(path.rawValue):\(target)" }

    public static func == (a: Route, b: Route) -> Bool { a.path == b.path && a.target == b.target }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(path)
        hasher.combine(target)
    }
}

/// What a vehicle wants computed.
public struct RequestSpec: Sendable, Equatable {
    public var requestID: String
    /// The task of the mix it is an instance of.
    public var task: String
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    public var payloadBytes: Int
    public var resultBytes: Int
    /// Seconds from creation to the deadline.
    public var deadline: Double
    /// For a shareable task: the key under which its result is shared and reused.
    public var sharingKey: String?
    /// The real prompt the request carries ("" when its task has none).
    public var prompt: String
    /// Split inference: the layers run on board before the request goes out (0: none, the whole
    /// model remotely; the model's layer count: all on board); nil for a task that does not split.
    public var split: Int?
    /// A model split across this many neighbouring vehicles (0: not).
    public var pipeline = 0

    public init(requestID: String, task: String = "default", model: String, inputTokens: Int, outputTokens: Int, payloadBytes: Int,
                resultBytes: Int = 2_000, deadline: Double, sharingKey: String? = nil, prompt: String = "") {
        self.requestID = requestID
        self.task = task
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.resultBytes = resultBytes
        self.deadline = deadline
        self.sharingKey = sharingKey
        self.prompt = prompt
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
    /// The generated answer of a real model server ("" for a modelled one).
    public var answer: String

    public init(kind: Kind, servedBy: String, path: String, queueWait: Double = 0, computeTime: Double = 0, detail: String = "",
                answer: String = "") {
        self.kind = kind
        self.servedBy = servedBy
        self.path = path
        self.queueWait = queueWait
        self.computeTime = computeTime
        self.detail = detail
        self.answer = answer
    }
}

/// The failover state machine of one vehicle: every request it opens ends in exactly one terminal
/// state (completed, failed with a reason, or expired), and its path history is reported attempt
/// by attempt. Pure: time and the candidate routes (best first, from liveness and geometry) are
/// passed in; the vehicle carries out the returned actions.
///
/// Rules:
/// - A request keeps up to `width` attempts in flight at once (1; 2 when hedged), each to a
///   different node. An attempt goes to the best candidate not yet tried for this request; if
///   every candidate was tried and nothing is in flight, they may be tried again after
///   `retryBackoff`. With no candidate at all the request waits (and expires at its deadline if
///   none appears).
/// - An attempt ends when its reply arrives, when its target is declared dead or leaves range
///   (`targetLost`), or without a reply after `attemptTimeout` (or `expectedMargin` times the
///   route's expected latency, if longer); a replacement is then sent.
/// - The first completed reply finishes the request; the attempts still in flight end as
///   `cancelled` and are withdrawn (`cancel` action). Replies to attempts that already ended are
///   discarded, so a result is delivered at most once.
/// - At the deadline the request expires (attempts in flight are withdrawn); after `maxAttempts`
///   attempts it fails.
public struct RequestLedger: Sendable {
    public struct Config: Sendable, Equatable {
        /// Seconds an attempt waits for its reply (longer for a route expected to be slow).
        public var attemptTimeout: Double
        public var maxAttempts: Int
        public var retryBackoff: Double
        /// An attempt on a route with an expected latency waits at least this many times it.
        public var expectedMargin: Double

        public init(attemptTimeout: Double = 2.5, maxAttempts: Int = 8, retryBackoff: Double = 0.25, expectedMargin: Double = 2) {
            self.attemptTimeout = attemptTimeout
            self.maxAttempts = maxAttempts
            self.retryBackoff = retryBackoff
            self.expectedMargin = expectedMargin
        }

        /// Seconds an attempt on `route` waits for its reply (the deadline may cut it shorter).
        public func timeout(for route: Route) -> Double {
            max(attemptTimeout, expectedMargin * (route.expectedLatency ?? 0))
        }
    }

    public enum Action: Sendable, Equatable {
        /// Send attempt `attempt` of the request on `route`; the server should answer by `replyBy`.
        case send(spec: RequestSpec, attempt: Int, route: Route, replyBy: Double)
        /// Withdraw an attempt still in flight (the request no longer needs it).
        case cancel(requestID: String, attempt: Int, route: Route)
        /// An attempt ended.
        case attemptEnded(requestID: String, attempt: Int, route: Route, sentAt: Double, endedAt: Double, outcome: AttemptOutcome,
                          detail: String?)
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

        public init(requestID: String, status: RequestStatus, at: Double, createdAt: Double, attempts: Int, reason: String?,
                    reply: ReplyOutcome?) {
            self.requestID = requestID
            self.status = status
            self.at = at
            self.createdAt = createdAt
            self.attempts = attempts
            self.reason = reason
            self.reply = reply
        }
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
        var width: Int
        var attempts = 0
        var inFlight: [Attempt] = []
        var tried: Set<String> = []
        var retryAt: Double?
        var lastOutcome: AttemptOutcome?
    }

    public let config: Config
    private var open: [String: Open] = [:]
    /// Replies that arrived for an attempt that was no longer in flight, or a request already finished.
    public private(set) var discardedReplies = 0

    public init(config: Config = Config()) { self.config = config }

    public var openCount: Int { open.count }
    public var openRequestIDs: [String] { open.keys.sorted() }

    /// The spec of an open request.
    public func spec(of requestID: String) -> RequestSpec? { open[requestID]?.spec }

    /// The earliest instant at which `tick(now:candidates:)` has something to do (an attempt's
    /// reply-by, a deadline, a retry), if any.
    public var nextDeadline: Double? {
        open.values.map { r in min(r.deadlineAt, r.inFlight.map(\.replyBy).min() ?? .infinity, r.retryAt ?? .infinity) }.min()
    }

    /// The nodes that attempts are in flight to.
    public var targetsInFlight: Set<String> {
        Set(open.values.flatMap { $0.inFlight.map(\.route.target) })
    }

    /// Requests with an attempt in flight to `target`.
    public func inFlight(to target: String) -> [String] {
        open.values.filter { $0.inFlight.contains { $0.route.target == target } }.map(\.spec.requestID).sorted()
    }

    /// Opens a request keeping up to `width` attempts in flight.
    /// The candidate routes for a request, best first (they may depend on the request: its model,
    /// its payload, the time left to its deadline).
    public typealias Candidates = (RequestSpec) -> [Route]

    public mutating func open(_ spec: RequestSpec, now: Double, candidates: [Route], width: Int = 1) -> [Action] {
        precondition(open[spec.requestID] == nil, "request ids are unique")
        precondition(width >= 1)
        var request = Open(spec: spec, createdAt: now, deadlineAt: now + spec.deadline, width: width)
        var actions: [Action] = []
        dispatch(&request, now: now, candidates: candidates, into: &actions)
        store(request, now: now, actions: &actions)
        return actions
    }

    public mutating func replied(requestID: String, attempt: Int, outcome: ReplyOutcome, now: Double, candidates: [Route]) -> [Action] {
        replied(requestID: requestID, attempt: attempt, outcome: outcome, now: now, candidates: { _ in candidates })
    }

    public mutating func replied(requestID: String, attempt: Int, outcome: ReplyOutcome, now: Double,
                                 candidates: Candidates) -> [Action] {
        guard var request = open[requestID], let current = request.inFlight.first(where: { $0.number == attempt }) else {
            discardedReplies += 1
            return []
        }
        var actions: [Action] = []
        switch outcome.kind {
        case .completed:
            end(&request, current, outcome: .replied, detail: nil, now: now, into: &actions)
            complete(request, with: outcome, withdrawing: .cancelled, now: now, into: &actions)
            return actions
        case .rejected, .failed:
            let label: AttemptOutcome = outcome.kind == .rejected ? .rejected : .failed
            end(&request, current, outcome: label, detail: outcome.detail.isEmpty ? nil : outcome.detail, now: now, into: &actions)
            dispatch(&request, now: now, candidates: candidates(request.spec), into: &actions)
        }
        store(request, now: now, actions: &actions)
        return actions
    }

    /// The request was answered without an attempt of its own (a neighbour's shared result):
    /// it completes now and whatever is in flight is withdrawn. Nothing if it is not open.
    public mutating func satisfied(requestID: String, by outcome: ReplyOutcome, now: Double) -> [Action] {
        guard let request = open[requestID] else { return [] }
        var actions: [Action] = []
        complete(request, with: outcome, withdrawing: .superseded, now: now, into: &actions)
        return actions
    }

    /// `target` is dead, or the vehicle left its range: re-send what was in flight to it.
    public mutating func targetLost(_ target: String, outcome: AttemptOutcome, now: Double, candidates: [Route]) -> [Action] {
        targetLost(target, outcome: outcome, now: now, candidates: { _ in candidates })
    }

    public mutating func targetLost(_ target: String, outcome: AttemptOutcome, now: Double, candidates: Candidates) -> [Action] {
        var actions: [Action] = []
        for id in inFlight(to: target) {
            guard var request = open[id] else { continue }
            for attempt in request.inFlight where attempt.route.target == target {
                end(&request, attempt, outcome: outcome, detail: nil, now: now, into: &actions)
            }
            dispatch(&request, now: now, candidates: candidates(request.spec).filter { $0.target != target }, into: &actions)
            store(request, now: now, actions: &actions)
        }
        return actions
    }

    /// Advances time: deadlines, attempt time-outs, waiting requests.
    public mutating func tick(now: Double, candidates: [Route]) -> [Action] {
        tick(now: now, candidates: { _ in candidates })
    }

    public mutating func tick(now: Double, candidates: Candidates) -> [Action] {
        var actions: [Action] = []
        for id in open.keys.sorted() {
            guard var request = open[id] else { continue }
            if now >= request.deadlineAt {
                for attempt in request.inFlight {
                    end(&request, attempt, outcome: .deadline, detail: nil, now: now, into: &actions)
                    actions.append(.cancel(requestID: id, attempt: attempt.number, route: attempt.route))
                }
                open[id] = nil
                actions.append(.finished(Finished(requestID: id, status: .expired, at: now, createdAt: request.createdAt,
                                                  attempts: request.attempts, reason: request.lastOutcome?.rawValue ?? "no-path", reply: nil)))
                continue
            }
            for attempt in request.inFlight where now >= attempt.replyBy {
                end(&request, attempt, outcome: .timeout, detail: nil, now: now, into: &actions)
            }
            if request.inFlight.count < request.width, request.retryAt.map({ now >= $0 }) ?? true {
                dispatch(&request, now: now, candidates: candidates(request.spec), into: &actions)
            }
            store(request, now: now, actions: &actions)
        }
        return actions
    }

    /// Ends every open request as failed with `reason` (the run ended, the vehicle left the trace).
    public mutating func closeAll(reason: String, now: Double) -> [Action] {
        open.keys.sorted().flatMap { close($0, reason: reason, now: now) }
    }

    /// Ends one open request as failed with `reason`, withdrawing its attempts in flight (abandoned).
    public mutating func close(_ requestID: String, reason: String, now: Double) -> [Action] {
        guard var request = open.removeValue(forKey: requestID) else { return [] }
        var actions: [Action] = []
        for attempt in request.inFlight { end(&request, attempt, outcome: .abandoned, detail: reason, now: now, into: &actions) }
        actions.append(.finished(Finished(requestID: requestID, status: .failed, at: now, createdAt: request.createdAt,
                                          attempts: request.attempts, reason: reason, reply: nil)))
        return actions
    }

    // MARK: -

    private func end(_ request: inout Open, _ attempt: Attempt, outcome: AttemptOutcome, detail: String?, now: Double,
                     into actions: inout [Action]) {
        actions.append(.attemptEnded(requestID: request.spec.requestID, attempt: attempt.number, route: attempt.route,
                                     sentAt: attempt.sentAt, endedAt: now, outcome: outcome, detail: detail))
        request.inFlight.removeAll { $0.number == attempt.number }
        request.lastOutcome = outcome
    }

    /// Finishes `request` as completed; the attempts still in flight end as `withdrawn` and are cancelled.
    private mutating func complete(_ request: Open, with outcome: ReplyOutcome, withdrawing withdrawn: AttemptOutcome, now: Double,
                                   into actions: inout [Action]) {
        var request = request
        for attempt in request.inFlight {
            end(&request, attempt, outcome: withdrawn, detail: nil, now: now, into: &actions)
            actions.append(.cancel(requestID: request.spec.requestID, attempt: attempt.number, route: attempt.route))
        }
        open[request.spec.requestID] = nil
        actions.append(.finished(Finished(requestID: request.spec.requestID, status: .completed, at: now, createdAt: request.createdAt,
                                          attempts: request.attempts, reason: nil, reply: outcome)))
    }

    /// Sends attempts until `width` are in flight or no candidate is left.
    private func dispatch(_ request: inout Open, now: Double, candidates: [Route], into actions: inout [Action]) {
        while request.inFlight.count < request.width {
            if request.attempts >= config.maxAttempts {
                if request.inFlight.isEmpty { request.retryAt = .infinity }  // marks it for failing in store()
                return
            }
            let busy = Set(request.inFlight.map(\.route.target))
            let free = candidates.filter { !busy.contains($0.target) }
            var route = free.first { !request.tried.contains($0.target) }
            if route == nil {
                // Every candidate was tried. A hedge partner just waits for a new path; a request with
                // nothing in flight waits a little, then starts over.
                guard request.inFlight.isEmpty, !free.isEmpty else { return }
                if let retryAt = request.retryAt, now >= retryAt {
                    request.tried.removeAll()
                    route = free.first
                } else {
                    if request.retryAt == nil || request.retryAt! < now { request.retryAt = now + config.retryBackoff }
                    return
                }
            }
            guard let route else { return }
            request.attempts += 1
            request.retryAt = nil
            request.tried.insert(route.target)
            let replyBy = min(request.deadlineAt, now + config.timeout(for: route))
            request.inFlight.append(Attempt(number: request.attempts, route: route, sentAt: now, replyBy: replyBy))
            actions.append(.send(spec: request.spec, attempt: request.attempts, route: route, replyBy: replyBy))
        }
    }

    private mutating func store(_ request: Open, now: Double, actions: inout [Action]) {
        if request.inFlight.isEmpty, request.retryAt == .infinity {
            open[request.spec.requestID] = nil
            actions.append(.finished(Finished(requestID: request.spec.requestID, status: .failed, at: now,
                                              createdAt: request.createdAt, attempts: request.attempts,
                                              reason: "attempts-exhausted (last: \(request.lastOutcome?.rawValue ?? "none"))", reply: nil)))
        } else {
            open[request.spec.requestID] = request
        }
    }
}
