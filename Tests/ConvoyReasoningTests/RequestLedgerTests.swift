import ConvoyCore
import ConvoyReasoning
import ConvoyWire
import Testing

private let A = Route(.rsu, "rsu-a")
private let B = Route(.rsu, "rsu-b")
private let C = Route(.macro, "cloud")

private func spec(_ id: String, deadline: Double = 10) -> RequestSpec {
    RequestSpec(requestID: id, model: "llama-3-8b", inputTokens: 256, outputTokens: 32, payloadBytes: 20_000, deadline: deadline)
}

private func completed(by server: String, path: String = "rsu") -> ReplyOutcome {
    ReplyOutcome(kind: .completed, servedBy: server, path: path, queueWait: 0.1, computeTime: 0.4)
}

private typealias Action = RequestLedger.Action

/// The `.finished` payloads among `actions`.
private func finishes(_ actions: [Action]) -> [RequestLedger.Finished] {
    actions.compactMap { if case .finished(let f) = $0 { f } else { nil } }
}

@Suite struct RequestLedgerTests {
    @Test func openSendsOnTheFirstCandidate() {
        var ledger = RequestLedger()
        let actions = ledger.open(spec("r1"), now: 1, candidates: [A, B])
        #expect(actions == [.send(spec: spec("r1"), attempt: 1, route: A, replyBy: 3.5)])
        #expect(ledger.openCount == 1 && ledger.openRequestIDs == ["r1"])
        #expect(ledger.inFlight(to: "rsu-a") == ["r1"] && ledger.inFlight(to: "rsu-b") == [])
    }

    @Test func completedReplyFinishesTheRequest() throws {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 1, candidates: [A, B])
        let reply = completed(by: "rsu-a")
        let actions = ledger.replied(requestID: "r1", attempt: 1, outcome: reply, now: 1.8, candidates: [A, B])
        try #require(actions.count == 2)
        #expect(actions[0] == .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 1, endedAt: 1.8, outcome: .replied, detail: nil))
        let f = try #require(finishes(actions).first)
        #expect(f.requestID == "r1" && f.status == .completed && f.at == 1.8 && f.createdAt == 1)
        #expect(f.attempts == 1 && f.reason == nil && f.reply == reply)
        #expect(ledger.openCount == 0 && ledger.inFlight(to: "rsu-a") == [])
        // A second copy of the reply is discarded.
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: reply, now: 1.9, candidates: [A]) == [])
        #expect(ledger.discardedReplies == 1)
    }

    @Test func hedgedRequestRefillsAFailedAttemptAndCancelsTheLoserOnce() throws {
        var ledger = RequestLedger()
        #expect(ledger.open(spec("r1"), now: 0, candidates: [A, B, C], width: 2) == [
            .send(spec: spec("r1"), attempt: 1, route: A, replyBy: 2.5),
            .send(spec: spec("r1"), attempt: 2, route: B, replyBy: 2.5),
        ])
        #expect(ledger.targetsInFlight == ["rsu-a", "rsu-b"])
        // B is full: the next path takes its place; A stays in flight.
        let refill = ledger.replied(requestID: "r1", attempt: 2, outcome: ReplyOutcome(kind: .rejected, servedBy: "rsu-b", path: "rsu",
                                                                                      detail: "full"), now: 0.1, candidates: [A, B, C])
        #expect(refill == [
            .attemptEnded(requestID: "r1", attempt: 2, route: B, sentAt: 0, endedAt: 0.1, outcome: .rejected, detail: "full"),
            .send(spec: spec("r1"), attempt: 3, route: C, replyBy: 2.6),
        ])
        // The cloud answers first: A is withdrawn.
        let done = ledger.replied(requestID: "r1", attempt: 3, outcome: completed(by: "cloud", path: "macro"), now: 0.9, candidates: [A])
        #expect(done.prefix(3) == [
            .attemptEnded(requestID: "r1", attempt: 3, route: C, sentAt: 0.1, endedAt: 0.9, outcome: .replied, detail: nil),
            .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 0.9, outcome: .cancelled, detail: nil),
            .cancel(requestID: "r1", attempt: 1, route: A),
        ])
        let f = try #require(finishes(done).first)
        #expect(f.status == .completed && f.attempts == 3 && f.reply?.servedBy == "cloud")
        // A's answer arrives anyway: discarded, the result was delivered once.
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: completed(by: "rsu-a"), now: 1, candidates: [A]) == [])
        #expect(ledger.discardedReplies == 1 && ledger.openCount == 0)
    }

    @Test func aRouteExpectedToBeSlowGetsALongerTimeout() {
        var ledger = RequestLedger()
        let slow = Route(.macro, "cloud", expectedLatency: 1.75)
        #expect(slow == C, "the estimate is an annotation, not part of the route")
        #expect(ledger.open(spec("r1"), now: 0, candidates: [slow]) == [.send(spec: spec("r1"), attempt: 1, route: C, replyBy: 3.5)])
        #expect(ledger.tick(now: 3, candidates: [slow]) == [], "still within 2 × 1.75 s")
        // Never past the deadline; a fast route keeps the default 2.5 s.
        #expect(ledger.open(spec("r2", deadline: 3), now: 0, candidates: [Route(.macro, "cloud", expectedLatency: 4)]).first
                == .send(spec: spec("r2", deadline: 3), attempt: 1, route: C, replyBy: 3))
        #expect(ledger.open(spec("r3"), now: 0, candidates: [Route(.rsu, "rsu-a", expectedLatency: 0.2)]).first
                == .send(spec: spec("r3"), attempt: 1, route: A, replyBy: 2.5))
    }

    @Test func hedgePartnerWaitsForASecondPath() {
        var ledger = RequestLedger()
        #expect(ledger.open(spec("r1"), now: 0, candidates: [A], width: 2).count == 1)
        #expect(ledger.tick(now: 0.1, candidates: [A]) == [], "no second path: A alone, not sent twice")
        #expect(ledger.tick(now: 0.2, candidates: [A, B]) == [.send(spec: spec("r1"), attempt: 2, route: B, replyBy: 2.7)])
    }

    @Test func aSharedResultSupersedesTheAttemptsInFlight() throws {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B], width: 2)
        let hit = ReplyOutcome(kind: .completed, servedBy: "edge-1", path: "v2v-cache")
        let actions = ledger.satisfied(requestID: "r1", by: hit, now: 0.3)
        #expect(actions.filter { if case .cancel = $0 { true } else { false } } == [
            .cancel(requestID: "r1", attempt: 1, route: A), .cancel(requestID: "r1", attempt: 2, route: B),
        ])
        #expect(actions.contains(.attemptEnded(requestID: "r1", attempt: 2, route: B, sentAt: 0, endedAt: 0.3, outcome: .superseded,
                                               detail: nil)))
        let f = try #require(finishes(actions).first)
        #expect(f.status == .completed && f.reply == hit && f.at == 0.3)
        #expect(ledger.satisfied(requestID: "r1", by: hit, now: 0.4) == [], "finished already")
    }

    @Test func expiryWithdrawsWhatIsInFlight() {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1", deadline: 1), now: 0, candidates: [A])
        let actions = ledger.tick(now: 1, candidates: [A])
        #expect(actions.contains(.cancel(requestID: "r1", attempt: 1, route: A)))
        #expect(finishes(actions).map(\.status) == [.expired])
    }

    @Test func targetLostFailsOverAndTheLateReplyIsDiscarded() throws {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B])
        let failover = ledger.targetLost("rsu-a", outcome: .targetDead, now: 0.5, candidates: [A, B])
        #expect(failover == [
            .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 0.5, outcome: .targetDead, detail: nil),
            .send(spec: spec("r1"), attempt: 2, route: B, replyBy: 3.0),
        ])
        #expect(ledger.inFlight(to: "rsu-b") == ["r1"] && ledger.inFlight(to: "rsu-a") == [])
        // The reply to attempt 1 (its server was only hung) arrives late: discarded.
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: completed(by: "rsu-a"), now: 0.7, candidates: [A, B]) == [])
        #expect(ledger.discardedReplies == 1 && ledger.openCount == 1)
        // The reply to attempt 2 completes it.
        let done = ledger.replied(requestID: "r1", attempt: 2, outcome: completed(by: "rsu-b"), now: 1.2, candidates: [A, B])
        #expect(done.first == .attemptEnded(requestID: "r1", attempt: 2, route: B, sentAt: 0.5, endedAt: 1.2, outcome: .replied, detail: nil))
        let f = try #require(finishes(done).first)
        #expect(f.status == .completed && f.attempts == 2 && f.reply?.servedBy == "rsu-b")
        // Any further reply, to either attempt, is discarded: the result is delivered once.
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: completed(by: "rsu-a"), now: 1.3, candidates: [A]) == [])
        #expect(ledger.replied(requestID: "r1", attempt: 2, outcome: completed(by: "rsu-b"), now: 1.3, candidates: [A]) == [])
        #expect(ledger.discardedReplies == 3)
    }

    @Test func targetLostTouchesOnlyRequestsInFlightToThatTarget() {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B])
        _ = ledger.open(spec("r2"), now: 0, candidates: [B, A])
        #expect(ledger.targetLost("rsu-c", outcome: .outOfRange, now: 0.1, candidates: [A, B]) == [])
        let actions = ledger.targetLost("rsu-b", outcome: .outOfRange, now: 0.2, candidates: [B, A])
        #expect(actions == [
            .attemptEnded(requestID: "r2", attempt: 1, route: B, sentAt: 0, endedAt: 0.2, outcome: .outOfRange, detail: nil),
            .send(spec: spec("r2"), attempt: 2, route: A, replyBy: 2.7),
        ])
        #expect(ledger.inFlight(to: "rsu-a") == ["r1", "r2"])
    }

    @Test func lostTargetIsNotRetriedEvenIfStillListed() {
        // The caller passes candidates that still include the lost target, and it is the only one.
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A])
        let actions = ledger.targetLost("rsu-a", outcome: .targetDead, now: 1, candidates: [A])
        #expect(actions == [.attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 1, outcome: .targetDead, detail: nil)])
        #expect(ledger.openCount == 1 && ledger.inFlight(to: "rsu-a") == [])
    }

    @Test func rejectedTriesTheNextCandidate() {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B, C])
        let rejected = ReplyOutcome(kind: .rejected, servedBy: "rsu-a", path: "rsu", detail: "full")
        let actions = ledger.replied(requestID: "r1", attempt: 1, outcome: rejected, now: 0.1, candidates: [A, B, C])
        #expect(actions == [
            .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 0.1, outcome: .rejected, detail: "full"),
            .send(spec: spec("r1"), attempt: 2, route: B, replyBy: 2.6),
        ])
        // A failure without detail: detail nil, and on to the macro cell.
        let failed = ReplyOutcome(kind: .failed, servedBy: "rsu-b", path: "rsu")
        #expect(ledger.replied(requestID: "r1", attempt: 2, outcome: failed, now: 0.2, candidates: [A, B, C]) == [
            .attemptEnded(requestID: "r1", attempt: 2, route: B, sentAt: 0.1, endedAt: 0.2, outcome: .failed, detail: nil),
            .send(spec: spec("r1"), attempt: 3, route: C, replyBy: 2.7),
        ])
    }

    @Test func timeoutRetriesOnTheNextCandidate() {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B])
        #expect(ledger.tick(now: 2.4, candidates: [A, B]) == [])
        #expect(ledger.tick(now: 2.5, candidates: [A, B]) == [
            .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 2.5, outcome: .timeout, detail: nil),
            .send(spec: spec("r1"), attempt: 2, route: B, replyBy: 5.0),
        ])
        #expect(ledger.tick(now: 2.6, candidates: [A, B]) == [])
    }

    @Test func everyCandidateTriedRetriesAfterBackoff() {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r1"), now: 0, candidates: [A])
        let rejected = ReplyOutcome(kind: .rejected, servedBy: "rsu-a", path: "rsu", detail: "full")
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: rejected, now: 1, candidates: [A]) == [
            .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0, endedAt: 1, outcome: .rejected, detail: "full"),
        ])
        #expect(ledger.tick(now: 1.125, candidates: [A]) == [], "backoff of 0.25 s not over")
        #expect(ledger.tick(now: 1.25, candidates: [A]) == [.send(spec: spec("r1"), attempt: 2, route: A, replyBy: 3.75)])
    }

    @Test func withoutCandidatesTheRequestWaitsThenSends() {
        var ledger = RequestLedger()
        #expect(ledger.open(spec("r1"), now: 0, candidates: []) == [])
        #expect(ledger.openCount == 1)
        #expect(ledger.tick(now: 1, candidates: []) == [])
        #expect(ledger.tick(now: 2, candidates: [C]) == [.send(spec: spec("r1"), attempt: 1, route: C, replyBy: 4.5)])
    }

    @Test func attemptReplyByNeverExceedsTheDeadline() {
        var ledger = RequestLedger()
        #expect(ledger.open(spec("r1", deadline: 1), now: 5, candidates: [A]) == [.send(spec: spec("r1", deadline: 1), attempt: 1, route: A, replyBy: 6)])
    }

    @Test func deadlineExpiresWithTheLastOutcomeAsReason() throws {
        var ledger = RequestLedger()
        _ = ledger.open(spec("lost", deadline: 3), now: 0, candidates: [A])
        _ = ledger.targetLost("rsu-a", outcome: .targetDead, now: 1, candidates: [])
        _ = ledger.open(spec("nopath", deadline: 3), now: 0, candidates: [])
        _ = ledger.open(spec("inflight", deadline: 1.5), now: 2, candidates: [B])
        #expect(ledger.tick(now: 2.9, candidates: []) == [])
        let actions = ledger.tick(now: 3, candidates: [])
        let f = finishes(actions)
        #expect(f.map(\.requestID) == ["lost", "nopath"])
        #expect(f.allSatisfy { $0.status == .expired && $0.at == 3 && $0.reply == nil })
        #expect(f.map(\.reason) == ["target-dead", "no-path"])
        #expect(f.map(\.attempts) == [1, 0])
        // The one still in flight (its replyBy capped at its deadline, 3.5) ends at its deadline.
        let last = ledger.tick(now: 3.5, candidates: [])
        #expect(last.first == .attemptEnded(requestID: "inflight", attempt: 1, route: B, sentAt: 2, endedAt: 3.5, outcome: .deadline, detail: nil))
        let g = try #require(finishes(last).first)
        #expect(g.requestID == "inflight" && g.status == .expired && g.attempts == 1 && g.createdAt == 2 && g.reason == "deadline")
        #expect(ledger.openCount == 0)
    }

    @Test func exhaustedAttemptsFail() throws {
        var ledger = RequestLedger(config: .init(attemptTimeout: 1, maxAttempts: 2, retryBackoff: 0.25))
        _ = ledger.open(spec("r1"), now: 0, candidates: [A, B, C])
        let rejected = ReplyOutcome(kind: .rejected, servedBy: "x", path: "rsu", detail: "full")
        _ = ledger.replied(requestID: "r1", attempt: 1, outcome: rejected, now: 0.1, candidates: [A, B, C])
        let actions = ledger.tick(now: 1.1, candidates: [A, B, C])
        #expect(actions.first == .attemptEnded(requestID: "r1", attempt: 2, route: B, sentAt: 0.1, endedAt: 1.1, outcome: .timeout, detail: nil))
        #expect(actions.count == 2)
        let f = try #require(finishes(actions).first)
        #expect(f.status == .failed && f.attempts == 2 && f.reason == "attempts-exhausted (last: timeout)" && f.at == 1.1)
        #expect(ledger.openCount == 0)
        #expect(ledger.tick(now: 20, candidates: [A]) == [])
    }

    @Test func closeAllFailsEveryOpenRequestAndAbandonsAttempts() throws {
        var ledger = RequestLedger()
        _ = ledger.open(spec("r2"), now: 0, candidates: [])
        _ = ledger.open(spec("r1"), now: 0.5, candidates: [A])
        let actions = ledger.closeAll(reason: "run-ended", now: 4)
        #expect(actions.count == 3)
        #expect(actions[0] == .attemptEnded(requestID: "r1", attempt: 1, route: A, sentAt: 0.5, endedAt: 4, outcome: .abandoned, detail: "run-ended"))
        let f = finishes(actions)
        #expect(f.map(\.requestID) == ["r1", "r2"])
        #expect(f.allSatisfy { $0.status == .failed && $0.reason == "run-ended" && $0.at == 4 && $0.reply == nil })
        #expect(f.map(\.attempts) == [1, 0])
        #expect(ledger.openCount == 0)
        #expect(ledger.closeAll(reason: "again", now: 5) == [])
        #expect(ledger.replied(requestID: "r1", attempt: 1, outcome: completed(by: "rsu-a"), now: 5, candidates: []) == [])
    }

    // MARK: - Invariants under random event sequences

    /// One random history: the actions in order, the ids opened, and how many replies returned nothing.
    private static func randomHistory(seed: UInt64, width: Int = 1) -> (actions: [Action], opened: [String], emptyReplies: Int, discarded: Int, stillOpen: Int, config: RequestLedger.Config) {
        var rng = SeededGenerator(seed: seed, label: "ledger-invariants")
        let config = RequestLedger.Config(attemptTimeout: 0.8, maxAttempts: 4, retryBackoff: 0.2)
        var ledger = RequestLedger(config: config)
        let routes = [Route(.rsu, "rsu-1"), Route(.rsu, "rsu-2"), Route(.rsu, "rsu-3"), Route(.macro, "cloud")]
        var now = 0.0
        var log: [Action] = []
        var opened: [String] = []
        var lastAttempt: [String: Int] = [:]
        var emptyReplies = 0

        func candidates() -> [Route] {
            if rng.unit() < 0.15 { return [] }
            return routes.filter { _ in rng.unit() < 0.6 }.shuffled(using: &rng)
        }
        func record(_ actions: [Action]) {
            for case .send(let spec, let attempt, _, _) in actions { lastAttempt[spec.requestID] = attempt }
            log += actions
        }

        for _ in 0..<4000 {
            now += rng.unit() * 0.1
            switch rng.next() % 6 {
            case 0:
                let id = "req-\(opened.count)"
                opened.append(id)
                record(ledger.open(spec(id, deadline: 0.5 + rng.unit() * 4), now: now, candidates: candidates(), width: width))
            case 1, 2:
                // A reply, often to the latest attempt, sometimes to an older (or never sent) one.
                guard !opened.isEmpty else { continue }
                let id = opened[Int(rng.next() % UInt64(opened.count))]
                let latest = lastAttempt[id] ?? 1
                let attempt = rng.unit() < 0.7 ? latest : 1 + Int(rng.next() % UInt64(latest + 1))
                let kinds: [ReplyOutcome.Kind] = [.completed, .completed, .rejected, .failed]
                let kind = kinds[Int(rng.next() % 4)]
                let actions = ledger.replied(requestID: id, attempt: attempt,
                                             outcome: ReplyOutcome(kind: kind, servedBy: "x", path: "rsu"), now: now, candidates: candidates())
                if actions.isEmpty { emptyReplies += 1 }
                record(actions)
            case 3:
                let target = routes[Int(rng.next() % UInt64(routes.count))].target
                record(ledger.targetLost(target, outcome: rng.unit() < 0.5 ? .targetDead : .outOfRange, now: now, candidates: candidates()))
            default:
                record(ledger.tick(now: now, candidates: candidates()))
            }
        }
        record(ledger.tick(now: now + 100, candidates: candidates()))
        return (log, opened, emptyReplies, ledger.discardedReplies, ledger.openCount, config)
    }

    @Test(arguments: [(1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2)] as [(UInt64, Int)])
    func everyRequestFinishesExactlyOnceAndEveryAttemptEndsOnce(seed: UInt64, width: Int) {
        let history = Self.randomHistory(seed: seed, width: width)
        #expect(history.opened.count > 300, "the history exercises many requests")
        #expect(history.stillOpen == 0, "the final tick past every deadline closes everything")

        struct PerRequest {
            var sends: [(attempt: Int, route: Route, at: Double, replyBy: Double)] = []
            var ended: [Int] = []
            var inFlight: [Int: Route] = [:]
            var cancelled: [Int] = []
            var finished: [RequestLedger.Finished] = []
            var actionsAfterFinish = 0
        }
        var state: [String: PerRequest] = [:]
        var statuses: [RequestStatus: Int] = [:]
        for action in history.actions {
            switch action {
            case .send(let spec, let attempt, let route, let replyBy):
                var r = state[spec.requestID, default: PerRequest()]
                if !r.finished.isEmpty { r.actionsAfterFinish += 1 }
                #expect(r.inFlight.count < width, "\(spec.requestID): attempt \(attempt) sent while \(r.inFlight.count) are in flight")
                #expect(!r.inFlight.values.contains(route), "\(spec.requestID): two attempts in flight to \(route)")
                #expect(attempt == r.sends.count + 1, "\(spec.requestID): attempts are numbered 1, 2, 3…")
                #expect(attempt <= history.config.maxAttempts)
                r.sends.append((attempt, route, 0, replyBy))
                r.inFlight[attempt] = route
                state[spec.requestID] = r
            case .attemptEnded(let id, let attempt, let route, _, _, _, _):
                var r = state[id, default: PerRequest()]
                if !r.finished.isEmpty { r.actionsAfterFinish += 1 }
                #expect(r.inFlight[attempt] == route, "\(id): attempt \(attempt) ended but it is not in flight")
                r.ended.append(attempt)
                r.inFlight[attempt] = nil
                state[id] = r
            case .cancel(let id, let attempt, let route):
                var r = state[id, default: PerRequest()]
                #expect(r.ended.last == attempt && r.sends.first { $0.attempt == attempt }?.route == route,
                        "\(id): only an attempt that just ended is withdrawn")
                r.cancelled.append(attempt)
                state[id] = r
            case .finished(let f):
                var r = state[f.requestID, default: PerRequest()]
                #expect(r.inFlight.isEmpty, "\(f.requestID): finished with an attempt in flight")
                #expect(f.attempts == r.sends.count)
                if f.status == .completed { #expect(f.reply?.kind == .completed && f.reason == nil) } else { #expect(f.reply == nil && f.reason != nil) }
                r.finished.append(f)
                statuses[f.status, default: 0] += 1
                state[f.requestID] = r
            }
        }
        for id in history.opened {
            let r = state[id, default: PerRequest()]
            #expect(r.finished.count == 1, "\(id) finished \(r.finished.count) times")
            #expect(r.actionsAfterFinish == 0, "\(id) has actions after it finished")
            #expect(r.ended.sorted() == r.sends.map(\.attempt), "\(id): every sent attempt ends exactly once")
            if width == 1 { #expect(r.ended == r.sends.map(\.attempt)) }
        }
        #expect(Set(state.keys) == Set(history.opened))
        #expect(history.discarded == history.emptyReplies)
        // Every terminal state occurs, so the history covers the interesting paths.
        #expect((statuses[.completed] ?? 0) > 0 && (statuses[.expired] ?? 0) > 0 && (statuses[.failed] ?? 0) > 0, "\(statuses)")
    }

    @Test func randomHistoryRepeatsWithItsSeed() {
        let a = Self.randomHistory(seed: 11), b = Self.randomHistory(seed: 11)
        #expect(a.actions == b.actions)
        #expect(a.actions != Self.randomHistory(seed: 12).actions)
    }
}
