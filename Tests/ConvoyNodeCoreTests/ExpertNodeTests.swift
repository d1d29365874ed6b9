import ConvoyCore
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// Expert models in the vehicle core, against scripted events: a task split into experts'
/// subtasks, sent to holders over V2V or done on board, re-sent when a holder goes silent, and
/// recorded as attempts of the parent.
@Suite struct ExpertNodeTests {
    static let n1 = ("n1", Position(x: 110, y: 0)), n2 = ("n2", Position(x: 160, y: 0))

    func vehicle() -> VehicleScript {
        var scenario = testScenario(onboard: ComputeSpec(device: "jetson-agx-orin", slots: 2, queue: 2), interval: 100)
        scenario.experts = [ExpertSpec(name: "vision", model: "llama-3-8b-q4", holders: ["n1", "n2"]),
                            ExpertSpec(name: "traffic", model: "smollm2-135m", holders: ["veh"])]
        scenario.workload.tasks[0].subtasks = ["vision", "traffic"]
        var v = VehicleScript(.init(id: "veh", scenario: scenario, seed: 7, duration: 30, trajectory: straightLine("veh", from: 100, to: 101,
                                                                                                                   duration: 30)))
        v.script.send(.start, at: 0)
        return v
    }

    func reply(_ id: String, attempt: UInt16, from holder: (String, Position), at t: Double) -> VehicleCore.Event {
        let reply = InferenceReply(requestID: id, attempt: attempt, status: .completed, servedBy: holder.0, route: [holder.0],
                                   queueWait: 0, computeTime: 0.3, resultBytes: 500)
        return .frames(.broadcast, frames(reply, from: holder.0, at: t, position: holder.1, prefix: Topic.direct("veh")))
    }

    @Test func subtasksGoToTheirHoldersAndMergeIntoTheParent() throws {
        var v = vehicle()
        v.beacons(from: 0, to: 0.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2])
        // The vision subtask goes to the closer holder over V2V; the traffic subtask stays on board.
        let vision = try #require(v.script.sends.compactMap { $0.message.decoded(InferenceRequest.self) }.first { $0.requestID == "veh/1.1" })
        #expect(vision.model == "llama-3-8b-q4")
        #expect(v.script.sends.contains { $0.message.channel == .bus(topic: Topic.direct("n1")) && $0.message.kind == .request })
        #expect(!v.script.sends.contains { $0.message.decoded(InferenceRequest.self)?.requestID == "veh/1.2" }, "on board")
        v.script.send(reply("veh/1.1", attempt: 1, from: Self.n1, at: 1.0), at: 1.0)
        v.beacons(from: 1.0, to: 3.0, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2])
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.path == VehicleCore.expertsPath && done.servedBy == "n1+veh" && done.attempts == 2)
        // The subtasks are the parent's attempts; nothing is recorded under a subtask's id.
        let attempts = v.script.attempts.filter { $0.outcome != "pending" }
        #expect(Set(attempts.map(\.requestID)) == ["veh/1"])
        #expect(attempts.map(\.attempt).sorted() == [1, 2])
        #expect(Set(attempts.compactMap(\.detail)) == ["expert vision", "expert traffic"])
        #expect(Set(attempts.map(\.path)) == ["v2v", "onboard"])
        #expect(!v.script.requests.contains { $0.requestID.contains(".") })
    }

    @Test func theRunEndingClosesTheParentOnceAndRecordsEverySubtaskUnderIt() throws {
        var v = vehicle()
        v.beacons(from: 0, to: 0.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2])
        v.script.send(.drain, at: 0.5)
        v.script.send(.drain, at: 0.6)  // a second signal: stop now
        let closed = v.script.requests.filter { $0.requestID == "veh/1" && $0.status != nil }
        #expect(closed.count == 1 && closed[0].status == .failed)
        #expect(v.script.attempts.allSatisfy { $0.requestID == "veh/1" })
        #expect(v.state.finished)
    }

    @Test func aHolderThatFallsSilentHasItsSubtaskResentToAnother() throws {
        var v = vehicle()
        v.beacons(from: 0, to: 0.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2])
        // n1 falls silent: once it is gone, the vision subtask goes to n2.
        v.beacons(from: 0.5, to: 4.0, rsus: ["rsu-a"], neighbours: [Self.n2])
        let resent = try #require(v.script.sends.first {
            $0.message.decoded(InferenceRequest.self)?.requestID == "veh/1.1" && $0.message.channel == .bus(topic: Topic.direct("n2"))
        })
        let attempt = try #require(resent.message.decoded(InferenceRequest.self)?.attempt)
        v.script.send(reply("veh/1.1", attempt: attempt, from: Self.n2, at: 4.0), at: 4.0)
        v.beacons(from: 4.0, to: 5.0, rsus: ["rsu-a"], neighbours: [Self.n2])
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.servedBy == "n2+veh" && done.attempts == 3)
        // Detected by whichever comes first: the attempt's time-out or the neighbour's silence.
        #expect(v.script.attempts.contains { $0.requestID == "veh/1" && $0.target == "n1" && ["timeout", "out-of-range"].contains($0.outcome) })
    }

    @Test func aSubtaskThatExpiresEndsTheParentAndWithdrawsTheOthers() throws {
        var v = vehicle()
        v.beacons(from: 0, to: 6.0, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2])  // n1 never answers
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .expired && done.reason == "expert vision: deadline")
        #expect(v.script.requests.filter { $0.requestID == "veh/1" && $0.status != nil }.count == 1)
        // Every attempt, the withdrawn sibling's included, is recorded under the parent.
        #expect(v.script.attempts.allSatisfy { $0.requestID == "veh/1" })
        #expect(Set(v.script.attempts.filter { $0.outcome != "pending" }.compactMap { $0.detail?.components(separatedBy: ":")[0] })
            == ["expert vision", "expert traffic"])
    }
}
