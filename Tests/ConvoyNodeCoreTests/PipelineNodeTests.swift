import ConvoyCore
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// A model split across vehicles in the vehicle core, against scripted events: the chain the
/// requester plans, a stage handing on to the next, a broken chain reported at once, and the re-plan.
@Suite struct PipelineNodeTests {
    static let n1 = ("n1", Position(x: 110, y: 0)), n2 = ("n2", Position(x: 130, y: 0)), n3 = ("n3", Position(x: 150, y: 0))
    static let run: Set<String> = ["veh", "n1", "n2", "n3"]

    func vehicle(_ id: String = "veh", at x: Double = 100) -> VehicleScript {
        var scenario = testScenario(onboard: ComputeSpec(device: "jetson-agx-orin", slots: 2, queue: 2), interval: 100)
        scenario.workload.tasks[0].pipeline = 3
        var v = VehicleScript(.init(id: id, scenario: scenario, seed: 7, duration: 30, trajectory: straightLine(id, from: x, to: x + 1,
                                                                                                              duration: 30),
                                    vehicles: Self.run))
        v.script.send(.start, at: 0)
        return v
    }

    func requests(_ v: VehicleScript) -> [(to: Channel, request: InferenceRequest)] {
        v.script.sends.compactMap { sent in sent.message.decoded(InferenceRequest.self).map { (sent.message.channel, $0) } }
    }

    @Test func theRequesterPlansAChainOfNeighboursAndTheLastStageAnswers() throws {
        var v = vehicle()
        v.beacons(from: 0, to: 0.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2, Self.n3])
        let first = try #require(requests(v).first)
        // The closest neighbour first, then the next best: 32 layers in three slices of 11, 11 and 10.
        #expect(first.to == .bus(topic: Topic.direct("n1")))
        #expect(first.request.splitAt == 0 && first.request.sliceEnd == 11 && first.request.chain == ["n2", "n3"])
        #expect(v.script.attempts.first?.detail == "pipeline n1>n2>n3")
        let reply = InferenceReply(requestID: "veh/1", attempt: 1, status: .completed, servedBy: "n3", route: ["n1", "n2", "n3"],
                                   queueWait: 0, computeTime: 0.5, resultBytes: 2000)
        v.script.send(.frames(.broadcast, frames(reply, from: "n3", at: 3, position: Self.n3.1, prefix: Topic.direct("veh"))), at: 3)
        v.beacons(from: 3, to: 3.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2, Self.n3])
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.servedBy == "n3" && done.path == "v2v>v2v>v2v")
    }

    @Test func aStageComputesItsSliceAndHandsTheActivationsOn() throws {
        var n2 = vehicle("n2", at: 130)
        n2.beacons(from: 0, to: 0.2, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n3])
        let stage = InferenceRequest(requestID: "veh/1", attempt: 1, vehicleID: "veh", model: "llama-3-8b", inputTokens: 256,
                                     outputTokens: 32, payloadBytes: 400_000, deadline: 10, route: ["n1"], splitAt: 11, sliceEnd: 22,
                                     chain: ["n3"])
        n2.script.send(.frames(.broadcast, frames(stage, from: "n1", at: 0.2, position: Self.n1.1, prefix: Topic.direct("n2"))), at: 0.2)
        n2.beacons(from: 0.2, to: 4.0, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n3])
        let on = try #require(requests(n2).first { $0.to == .bus(topic: Topic.direct("n3")) })
        #expect(on.request.splitAt == 22 && on.request.sliceEnd == 32 && on.request.chain.isEmpty && on.request.route == ["n1", "n2"])
        // The prompt's activations and one token's for each later decode step: (256 + 31) × 4096 × 2 B.
        #expect(on.request.payloadBytes == 2_351_104)
        #expect(n2.script.counters["pipeline_handoffs"] == 1)
    }

    @Test func aStageThatCannotReachTheNextTellsTheRequesterAndItReplans() throws {
        var n2 = vehicle("n2", at: 130)
        n2.beacons(from: 0, to: 0.2, rsus: ["rsu-a"], neighbours: [Self.n1])  // n3 is gone
        let stage = InferenceRequest(requestID: "veh/1", attempt: 1, vehicleID: "veh", model: "llama-3-8b", inputTokens: 256,
                                     outputTokens: 32, payloadBytes: 400_000, deadline: 10, route: ["n1"], splitAt: 11, sliceEnd: 22,
                                     chain: ["n3"])
        n2.script.send(.frames(.broadcast, frames(stage, from: "n1", at: 0.2, position: Self.n1.1, prefix: Topic.direct("n2"))), at: 0.2)
        n2.beacons(from: 0.2, to: 4.0, rsus: ["rsu-a"], neighbours: [Self.n1])
        let broken = try #require(n2.script.sends.compactMap { $0.message.decoded(InferenceReply.self) }.first)
        #expect(broken.status == .failed && broken.detail == "pipeline broken: n3 unreachable from n2")
        // The requester hears it and re-plans from another first hop.
        var v = vehicle()
        v.beacons(from: 0, to: 0.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2, Self.n3])
        v.script.send(.frames(.broadcast, frames(broken, from: "n2", at: 1, position: Self.n2.1, prefix: Topic.direct("veh"))), at: 1)
        v.beacons(from: 1, to: 1.5, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n2, Self.n3])
        let second = try #require(requests(v).first { $0.request.attempt == 2 })
        #expect(second.to == .bus(topic: Topic.direct("n2")) && second.request.chain == ["n1", "n3"])
        #expect(v.script.attempts.contains { $0.attempt == 1 && $0.outcome == "failed" && $0.detail?.contains("pipeline broken") == true })
    }

    @Test func aStageSentOnBehalfOfAnotherVehicleIsOnlyAcceptedFromThePreviousStage() {
        var n2 = vehicle("n2", at: 130)
        n2.beacons(from: 0, to: 0.2, rsus: ["rsu-a"], neighbours: [Self.n1, Self.n3])
        let forged = InferenceRequest(requestID: "veh/1", attempt: 1, vehicleID: "veh", model: "llama-3-8b", inputTokens: 256,
                                      outputTokens: 32, payloadBytes: 1, deadline: 10, route: ["n3"], splitAt: 11, sliceEnd: 22)
        n2.script.send(.frames(.broadcast, frames(forged, from: "n1", at: 0.2, position: Self.n1.1, prefix: Topic.direct("n2"))), at: 0.2)
        n2.script.advance(to: 0.5)
        #expect(n2.script.counters["v2v_requests_refused_unknown_sender"] == 1)
    }
}
