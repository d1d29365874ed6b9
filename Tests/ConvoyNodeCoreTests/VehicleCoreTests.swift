import Foundation
import ConvoyCore
import ConvoyMobility
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// The vehicle core against scripted events: no sockets, no clock, no sleeps.
@Suite struct VehicleCoreTests {
    func vehicle(_ id: String = "veh", from: Double, to: Double, duration: Double = 60, scenario: Scenario = testScenario(),
                 vehicles: Set<String>? = nil) -> VehicleScript {
        var v = VehicleScript(.init(id: id, scenario: scenario, seed: 7, duration: duration, trajectory: straightLine(id, from: from, to: to,
                                                                                                                       duration: duration),
                                    vehicles: vehicles))
        v.script.send(.start, at: 0)
        return v
    }

    @Test func losingItsRSUMidRequestFailsOverToTheMacroCell() throws {
        var v = vehicle(from: 100, to: 101)
        v.beacons(from: 0, to: 1.0, rsus: ["rsu-a"])
        // The first request went to rsu-a, the only RSU in range.
        let first = try #require(v.script.sends.first { $0.message.kind == .request })
        #expect(first.message.channel == .access(node: "rsu-a"))
        #expect(first.message.decoded(InferenceRequest.self)?.requestID == "veh/1")
        // rsu-a falls silent; the cloud keeps beaconing. Liveness declares it dead and the attempt fails over.
        v.beacons(from: 1.0, to: 2.0, rsus: [])
        let ended = try #require(v.script.attempts.first { $0.requestID == "veh/1" && $0.attempt == 1 && $0.outcome != "pending" })
        #expect(ended.outcome == AttemptOutcome.targetDead.rawValue)
        #expect(ended.target == "rsu-a")
        #expect(v.script.records.contains(.detection(DetectionRecord(observer: "veh", peer: "rsu-a", state: "dead", at: ended.endedAt!))))
        let retry = try #require(v.script.sends.first {
            let request = $0.message.decoded(InferenceRequest.self)
            return request?.requestID == "veh/1" && request?.attempt == 2
        })
        #expect(retry.message.channel == .access(node: "cloud"))
        #expect(retry.at == ended.endedAt)
        // The cloud answers over the macro cell: the request completes, served by the cloud.
        let reply = InferenceReply(requestID: "veh/1", attempt: 2, status: .completed, servedBy: "cloud", route: ["cloud"],
                                   queueWait: 0, computeTime: 0.2, resultBytes: 2000)
        v.script.send(.frames(.access, frames(reply, from: "cloud", at: 2.1, prefix: "cloud")), at: 2.1)
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.servedBy == "cloud" && done.path == "macro" && done.attempts == 2)
        // A late answer from the dead RSU is discarded, and counted.
        let late = InferenceReply(requestID: "veh/1", attempt: 1, status: .completed, servedBy: "rsu-a", route: ["rsu-a"])
        v.script.send(.frames(.access, frames(late, from: "rsu-a", at: 2.2, prefix: "rsu-a")), at: 2.2)
        #expect(v.script.counters["replies_discarded_late"] == 1)
    }

    @Test func aRelayWhoseRSUDiesRefusesItsNeighbourAtOnce() throws {
        var v = vehicle("relay", from: 100, to: 101)
        v.beacons(from: 0, to: 1.0, rsus: ["rsu-a"])
        // A neighbour 20 m away asks over V2V; with no on-board compute, the relay sends it to rsu-a.
        let asked = InferenceRequest(requestID: "asker/1", attempt: 1, vehicleID: "asker", model: "llama-3-8b", inputTokens: 256,
                                     outputTokens: 32, payloadBytes: 20_000, deadline: 4)
        v.script.send(.frames(.broadcast, frames(asked, from: "asker", at: 1.0, position: Position(x: 120, y: 0),
                                                 prefix: Topic.direct("relay"))), at: 1.0)
        v.script.advance(to: 1.05)
        #expect(v.script.counters["v2v_relayed"] == 1)
        let relayed = try #require(v.script.sends.first { $0.message.decoded(InferenceRequest.self)?.requestID == "asker/1" })
        #expect(relayed.message.channel == .access(node: "rsu-a"))
        // rsu-a dies: the neighbour gets a refusal over V2V at once instead of a time-out.
        v.beacons(from: 1.05, to: 2.0, rsus: [])
        let refusal = try #require(v.script.sends.compactMap { sent in sent.message.decoded(InferenceReply.self).map { ($0, sent.message) } }
            .first { $0.0.requestID == "asker/1" })
        #expect(refusal.0.status == .failed && refusal.0.detail == "rsu-a unreachable")
        #expect(refusal.1.channel == .bus(topic: Topic.direct("asker")))
        // Its reply, if it still came, answers nothing.
        let reply = InferenceReply(requestID: "asker/1", attempt: 1, status: .completed, servedBy: "rsu-a", route: ["rsu-a"])
        v.script.send(.frames(.access, frames(reply, from: "rsu-a", at: 2.1, prefix: "rsu-a")), at: 2.1)
        #expect(v.script.sends.filter { $0.message.decoded(InferenceReply.self)?.requestID == "asker/1" }.count == 1)
    }

    @Test func aV2VRequestFromOutsideTheRunOrUnderAnotherNameIsRefused() throws {
        var v = vehicle("relay", from: 100, to: 101, vehicles: ["relay", "asker", "other"])
        v.beacons(from: 0, to: 1.0, rsus: ["rsu-a"])
        func ask(_ request: InferenceRequest, from sender: String, at t: Double) {
            v.script.send(.frames(.broadcast, frames(request, from: sender, at: t, position: Position(x: 120, y: 0),
                                                     prefix: Topic.direct("relay"))), at: t)
            v.script.advance(to: t + 0.05)
        }
        func request(_ id: String, for vehicle: String) -> InferenceRequest {
            InferenceRequest(requestID: id, attempt: 1, vehicleID: vehicle, model: "llama-3-8b", inputTokens: 256, outputTokens: 32,
                             payloadBytes: 20_000, deadline: 4)
        }
        ask(request("asker/1", for: "asker"), from: "asker", at: 1.0)         // a vehicle of the run, for itself
        #expect(v.script.counters["v2v_relayed"] == 1)
        ask(request("ghost-1/1", for: "ghost-1"), from: "ghost-1", at: 1.06)  // not a vehicle of the run
        ask(request("other/1", for: "other"), from: "asker", at: 1.12)        // a vehicle asking under another's name
        ask(request("other/2", for: "asker"), from: "asker", at: 1.18)        // an id that is not its vehicle's
        #expect(v.script.counters["v2v_requests_refused_unknown_sender"] == 3)
        #expect(v.script.counters["v2v_relayed"] == 1)
    }

    @Test func aHedgedPairEndsWhenANeighbourSharesTheResult() throws {
        let scenario = testScenario(policy: "hedged", shareable: true)
        var v = vehicle(from: 200, to: 201, scenario: scenario)
        v.beacons(from: 0, to: 0.35, rsus: ["rsu-a", "rsu-b"])
        let pair = v.script.sends.filter { $0.message.decoded(InferenceRequest.self)?.requestID == "veh/1" }
        #expect(pair.count == 2, "two attempts in flight")
        #expect(Set(pair.map(\.message.channel)).count == 2, "on two different nodes")
        // A neighbour shares the result for this task and area.
        let key = scenario.workload.sharingKey(task: "caption", at: v.state.position(at: 0.3))
        let shared = SharedResult(requestID: "other/4", key: key, computedAt: 0.35, servedBy: "edge-1", resultBytes: 2000)
        v.script.send(.frames(.broadcast, frames(shared, from: "other", at: 0.36, position: Position(x: 210, y: 0),
                                                 prefix: "v2v/1/0/")), at: 0.36)
        v.script.advance(to: 0.4)
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.cacheHit == true && done.servedBy == "edge-1" && done.path == VehicleCore.cachePath)
        let withdrawn = v.script.attempts.filter { $0.requestID == "veh/1" && $0.outcome == AttemptOutcome.superseded.rawValue }
        #expect(withdrawn.count == 2)
        let cancels = v.script.sends.filter { $0.message.decoded(InferenceCancel.self)?.requestID == "veh/1" }
        #expect(Set(cancels.map(\.message.channel)) == Set(pair.map(\.message.channel)))
        // The next request in the same area is answered from the shared result, without an attempt.
        v.beacons(from: 0.4, to: 1.35, rsus: ["rsu-a", "rsu-b"])
        let second = try #require(v.script.requests.last { $0.requestID == "veh/2" })
        #expect(second.cacheHit == true && second.attempts == 0)
    }

    @Test func handoversFollowTheBestRSU() {
        var v = vehicle(from: 100, to: 350, duration: 20)
        v.beacons(from: 0, to: 27, rsus: ["rsu-a", "rsu-b"])
        let handovers = v.script.records.compactMap { if case .handover(let h) = $0 { h } else { nil } }
        // The macro cell until the first RSU beacon is heard, then rsu-a, then rsu-b once it is the better cell.
        #expect(handovers.map(\.event) == ["attach", "handover", "handover"])
        #expect(handovers.map(\.toCell) == ["macro", "rsu-a", "rsu-b"])
        #expect(handovers.last?.fromCell == "rsu-a")
        #expect(handovers.last.map { $0.x > 200 } == true, "rsu-b is better only past the midpoint")
        // Its requests unanswered, the vehicle stops once nothing can still be open after its last sample.
        #expect(v.state.finished)
        #expect(v.script.log.last?.action == .stop)
    }

    /// The serving cell follows the signal, not the load each RSU advertises (with the load,
    /// vehicles between two RSUs ping-pong as it follows them), and hands over only for a margin.
    @Test func theServingCellFollowsTheSignalNotTheLoad() {
        var v = vehicle(from: 198, to: 198.01, duration: 12)   // rsu-a (x 0) a little nearer than rsu-b (x 400)
        v.beacons(from: 0, to: 3, rsus: ["rsu-a", "rsu-b"], load: ["rsu-a": 5])
        v.beacons(from: 3, to: 6, rsus: ["rsu-a", "rsu-b"], load: ["rsu-b": 5])
        v.beacons(from: 6, to: 9, rsus: ["rsu-b"])    // rsu-a dead: hand over, and stay
        v.beacons(from: 9, to: 11, rsus: ["rsu-a", "rsu-b"])  // rsu-a back, but not better by the margin
        let handovers = v.script.records.compactMap { if case .handover(let h) = $0 { h } else { nil } }
        #expect(handovers.map(\.toCell) == ["macro", "rsu-a", "rsu-b"], "\(handovers)")
    }

    @Test func onboardComputeAnswersItsOwnRequests() throws {
        let scenario = testScenario(policy: "local-only", onboard: ComputeSpec(device: "jetson-agx-orin", slots: 1, queue: 1))
        var v = vehicle(from: 100, to: 101, scenario: scenario)
        v.beacons(from: 0, to: 5.2, rsus: ["rsu-a"])
        let done = try #require(v.script.requests.first { $0.requestID == "veh/1" && $0.status != nil })
        #expect(done.status == .completed && done.servedBy == "veh" && done.path == "onboard")
        #expect(v.script.sends.allSatisfy { $0.message.kind != .request }, "nothing left the vehicle")
        #expect((v.script.counters["compute_ms"] ?? 0) > 0)
    }

    @Test func theSameSeedOffersTheSameRequestsWhateverThePolicy() {
        func offered(_ policy: String) -> [String] {
            var v = vehicle(from: 100, to: 300, duration: 12, scenario: testScenario(policy: policy, interval: 0.7))
            v.beacons(from: 0, to: 12, rsus: ["rsu-a", "rsu-b"])
            // Arrivals keep their schedule; the instant a request is handled is a timer's, to 0.1 ms.
            return v.script.requests.filter { $0.status == nil }.map { "\($0.requestID)@\(Int($0.createdAt * 1000)) \($0.task ?? "")" }
        }
        let bestRate = offered("best-rate")
        #expect(bestRate.count > 10)
        #expect(offered("hedged") == bestRate)
        #expect(offered("cloud-only") == bestRate)
    }

    @Test func endRules() {
        #expect(VehicleCore.endReason(now: 5, drainUntil: nil, openRequests: 1, lastSample: 10, longestDeadline: 5) == nil)
        #expect(VehicleCore.endReason(now: 10, drainUntil: nil, openRequests: 0, lastSample: 10, longestDeadline: 5) == .vehicleLeft)
        #expect(VehicleCore.endReason(now: 12, drainUntil: nil, openRequests: 1, lastSample: 10, longestDeadline: 5) == nil)
        #expect(VehicleCore.endReason(now: 16, drainUntil: nil, openRequests: 1, lastSample: 10, longestDeadline: 5) == .vehicleLeft)
        #expect(VehicleCore.endReason(now: 5, drainUntil: 8, openRequests: 1, lastSample: 10, longestDeadline: 5) == nil)
        #expect(VehicleCore.endReason(now: 5, drainUntil: 8, openRequests: 0, lastSample: 10, longestDeadline: 5) == .runEnded)
        #expect(VehicleCore.endReason(now: 8, drainUntil: 8, openRequests: 3, lastSample: 10, longestDeadline: 5) == .runEnded)
    }

    @Test func drainingClosesWhatIsStillOpenAsRunEnded() throws {
        var v = vehicle(from: 100, to: 101, scenario: testScenario(deadline: 8))
        v.beacons(from: 0, to: 0.35, rsus: ["rsu-a"])
        v.script.send(.drain, at: 0.4)
        // No answer comes; at the end of the drain time the request is closed.
        v.beacons(from: 0.4, to: 5.6, rsus: ["rsu-a"])
        let closed = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(closed.status == .failed && closed.reason == EndReason.runEnded.rawValue)
        #expect(v.script.requests.allSatisfy { $0.requestID == "veh/1" }, "no request opened after the drain")
        #expect(v.state.finished)
    }

    @Test func malformedFramesAreCountedAndDropped() {
        var v = vehicle(from: 100, to: 101)
        v.script.send(.frames(.access, [Array("rsu-a".utf8), [0x43, 0x56, 0x09]]), at: 0.1)
        v.script.send(.frames(.access, [Array("nobody".utf8)]), at: 0.1)
        v.script.send(.frames(.broadcast, [Array("v2v/0/0/".utf8), Array("garbage".utf8)]), at: 0.1)
        #expect(v.script.counters["frames_bad_shape"] == 2)
        #expect(v.script.counters.keys.contains { $0.hasPrefix("frames_bad") && $0 != "frames_bad_shape" })
    }

    /// The shell subscribes before the run's clock starts: the vehicle's own direct topic, the
    /// cloud's beacons and the topics around where it will be at its start; `.start` then has
    /// nothing left to subscribe to. Without the early call, `.start` subscribes to the same.
    @Test func subscriptionsAreMadeBeforeTheStart() {
        let setup = VehicleCore.Setup(id: "veh", scenario: testScenario(), seed: 7, duration: 60,
                                      trajectory: straightLine("veh", from: 0, to: 120))
        func subscriptions(_ actions: [NodeAction]) -> Set<String> {
            Set(actions.compactMap { if case .subscribe(let topic) = $0 { topic } else { nil } })
        }
        var early = VehicleCore(setup)
        let before = subscriptions(early.initialSubscriptions(at: 0))
        #expect(before.contains(Topic.direct("veh")))
        #expect(before.contains(Topic(v2vRange: testScenario().map.links.v2v.rangeM).v2v(at: early.position(at: 0))))
        #expect(before.contains { $0.hasPrefix("beacon/rsu/") })
        #expect(subscriptions(early.handle(.start, now: 0)).isEmpty)
        var late = VehicleCore(setup)
        #expect(subscriptions(late.handle(.start, now: 0)) == before)
    }

    /// With a lead, each V2V beacon leaves `beaconLead` before its instant, stamped with it and
    /// carrying the position of then; instants stay a second apart. Once the run drains, beacons
    /// leave at their instant again (the vehicle may stop at any moment).
    @Test func beaconsLeaveAheadOfTheirInstantStampedWithIt() {
        let lead = 0.05
        let trajectory = straightLine("veh", from: 0, to: 120)
        let setup = VehicleCore.Setup(id: "veh", scenario: testScenario(), seed: 7, duration: 60, trajectory: trajectory, beaconLead: lead)
        let core = VehicleCore(setup)
        var v = VehicleScript(setup)
        v.script.send(.start, at: 0)
        v.script.advance(to: 5)
        v.script.send(.drain, at: 5)
        v.script.advance(to: 7)
        let beacons = v.script.sends.filter { $0.message.kind == .v2vBeacon }
        let instants = beacons.map { $0.message.sentAt ?? $0.at }
        #expect(beacons.count >= 6)
        for (sent, instant) in zip(beacons, instants) {
            #expect(sent.message.position == core.position(at: instant))
            if instant < 5 { #expect(abs(instant - sent.at - lead) < 1e-9 || sent.at == 0) }
            if instant > 5 + lead { #expect(sent.message.sentAt == nil) }
        }
        for (a, b) in zip(instants, instants.dropFirst()) { #expect(abs(b - a - 1) < 1e-9) }
    }

    /// A beacon stamped ahead is held until the V2V link delivers it: the neighbour is heard at
    /// its modelled instant, not when the bus brought it. Messages stamped further ahead than
    /// the lead, and anything but a beacon stamped ahead at all, are refused and counted.
    @Test func aBeaconStampedAheadIsHeldUntilItsInstant() throws {
        var v = VehicleScript(.init(id: "veh", scenario: testScenario(), seed: 7, duration: 60,
                                    trajectory: straightLine("veh", from: 100, to: 101), beaconLead: 0.05))
        v.script.send(.start, at: 0)
        let beacon = V2VBeacon(speed: 0, heading: 0, freeSlots: 1, uplinkRate: 0)
        let here = Position(x: 150, y: 0)
        v.script.send(.frames(.broadcast, frames(beacon, from: "veh-2", at: 2.04, position: here, prefix: "v2v/0/0/")), at: 2.0)
        let observed = v.script.log.compactMap { entry -> (Double, Double)? in
            if case .observe(.v2v, .v2vBeacon, let sentAt, let modelled, let actual) = entry.action, sentAt == 2.04 { (modelled, actual) } else { nil }
        }
        #expect(observed.isEmpty)  // not yet: it is due after 2.04
        v.script.advance(to: 2.1)
        let delivered = v.script.log.compactMap { entry -> (Double, Double)? in
            if case .observe(.v2v, .v2vBeacon, 2.04, let modelled, let actual) = entry.action { (modelled, actual) } else { nil }
        }
        #expect(delivered.count == 1)
        if let (modelled, actual) = delivered.first { #expect(modelled > 2.04 && modelled < 2.041 && actual == modelled) }
        v.script.send(.frames(.broadcast, frames(beacon, from: "veh-2", at: 3.5, position: here, prefix: "v2v/0/0/")), at: 3.0)
        let request = InferenceRequest(requestID: "veh-2/1", attempt: 1, vehicleID: "veh-2", model: "llama-3-8b", inputTokens: 8,
                                       outputTokens: 8, payloadBytes: 100, deadline: 9, route: ["veh-2"])
        v.script.send(.frames(.broadcast, frames(request, from: "veh-2", at: 3.04, position: here, prefix: Topic.direct("veh"))), at: 3.0)
        #expect(v.script.counters["v2v_stamped_ahead_refused"] == 2)
    }

    /// Only one beacon in `measuredBeaconEvery` gets a timer (and is sampled); the others are
    /// applied at the first event at or after their instant, never before it.
    @Test func mostBeaconsWaitForTheNextEventInsteadOfATimer() {
        var v = VehicleScript(.init(id: "veh", scenario: testScenario(), seed: 7, duration: 60,
                                    trajectory: straightLine("veh", from: 100, to: 101), beaconLead: 0.05))
        v.script.send(.start, at: 0)
        v.script.advance(to: 2)
        let beacon = V2VBeacon(speed: 0, heading: 0, freeSlots: 1, uplinkRate: 0)
        var arms = 0
        for (sender, instant) in [("a", 2.03), ("b", 2.04), ("c", 2.045)] {
            let actions = v.script.send(.frames(.broadcast, frames(beacon, from: sender, at: instant, position: Position(x: 120, y: 0),
                                                                   prefix: "v2v/0/0/")), at: 2.0)
            arms += actions.filter { if case .arm = $0 { true } else { false } }.count
        }
        #expect(arms == 1)
        #expect(v.state.neighbourIDs.isEmpty)
        v.script.send(.frames(.broadcast, frames(Beacon(role: .rsu), from: "rsu-a", at: 2.042, prefix: Topic.rsuBeacon("rsu-a"))), at: 2.042)
        #expect(v.state.neighbourIDs == ["a", "b"])
        v.script.send(.frames(.broadcast, frames(Beacon(role: .rsu), from: "rsu-a", at: 2.05, prefix: Topic.rsuBeacon("rsu-a"))), at: 2.05)
        #expect(v.state.neighbourIDs == ["a", "b", "c"])
        let sampled = v.script.log.filter { if case .observe(.v2v, .v2vBeacon, _, _, _) = $0.action { true } else { false } }
        #expect(sampled.count == 1)
    }
}

@Suite struct ServingCellTests {
    @Test func attachHandoverDetach() {
        var cell = ServingCell()
        #expect(cell.update(to: nil) == nil)
        #expect(cell.update(to: "rsu-a").map { [$0.change.rawValue, $0.from ?? "-"] } == ["attach", "-"])
        #expect(cell.update(to: "rsu-a") == nil)
        #expect(cell.update(to: "rsu-b").map { [$0.change.rawValue, $0.from ?? "-"] } == ["handover", "rsu-a"])
        #expect(cell.update(to: nil).map { [$0.change.rawValue, $0.from ?? "-"] } == ["detach", "rsu-b"])
        #expect(cell.cell == nil)
    }
}

@Suite struct V2VTopicTests {
    /// Every sender within the V2V range publishes on a cell the receiver is subscribed to, wherever
    /// both are (cells at negative coordinates included), and the receiver hears fewer cells' area
    /// than a 3 × 3 block of range-wide cells (9 r²).
    @Test func everySenderInRangeIsOnASubscribedCell() {
        let range = 300.0
        let topics = Topic(v2vRange: range)
        var rng = SeededGenerator(seed: 7, label: "topics")
        var cells = 0
        for _ in 0..<2_000 {
            let here = Position(x: rng.unit() * 4_000 - 2_000, y: rng.unit() * 4_000 - 2_000)
            let around = topics.v2vAround(here)
            cells += around.count
            for _ in 0..<20 {
                let r = range * rng.unit().squareRoot(), angle = rng.unit() * 2 * .pi
                let sender = Position(x: here.x + r * cos(angle), y: here.y + r * sin(angle))
                #expect(around.contains(topics.v2v(at: sender)))
            }
        }
        let area = Double(cells) / 2_000 * topics.cellSize * topics.cellSize
        #expect(area < 6.5 * range * range)
        #expect(area > .pi * range * range)
    }
}
