import ConvoyCore
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// Split inference in the vehicle core, against scripted events: the on-board stage, what goes up,
/// failover from the kept stage output, and the two extremes.
@Suite struct SplitInferenceNodeTests {
    static let orin = ComputeSpec(device: "jetson-agx-orin", slots: 1, queue: 1)

    func scenario(split: SplitChoice?, policy: String = "best-rate") -> Scenario {
        var s = testScenario(policy: policy, onboard: Self.orin, interval: 10)
        s.workload.tasks[0].split = split
        return s
    }

    func vehicle(_ scenario: Scenario) -> VehicleScript {
        var v = VehicleScript(.init(id: "veh", scenario: scenario, seed: 7, duration: 30, trajectory: straightLine("veh", from: 100, to: 101,
                                                                                                                   duration: 30)))
        v.script.send(.start, at: 0)
        return v
    }

    @Test func theOnBoardStageRunsOnceAndItsOutputFailsOverToTheNextServer() throws {
        var v = vehicle(scenario(split: .fixed(8)))
        v.beacons(from: 0, to: 1.0, rsus: ["rsu-a"])
        let opened = try #require(v.script.requests.first { $0.requestID == "veh/1" })
        let first = try #require(v.script.sends.first { $0.message.decoded(InferenceRequest.self)?.requestID == "veh/1" })
        let request = try #require(first.message.decoded(InferenceRequest.self))
        // It left after the on-board stage (8 of 32 layers of the prefill on the Orin: 61.2 ms) ...
        #expect(abs(first.at - opened.createdAt - 0.061181) < 0.001)
        #expect(first.message.channel == .access(node: "rsu-a"))
        // ... carrying the split point and what the 8 layers produced (activations + their KV cache).
        #expect(request.splitAt == 8 && request.payloadBytes == 10_485_760)
        #expect(ComputeWork(request).stage == .upper(from: 8))
        // rsu-a dies: the kept output goes to the cloud over the macro cell; nothing is computed again on board.
        v.beacons(from: 1.0, to: 2.0, rsus: [])
        let retry = try #require(v.script.sends.compactMap { $0.message.decoded(InferenceRequest.self) }
            .first { $0.requestID == "veh/1" && $0.attempt == 2 })
        #expect(retry.splitAt == 8 && retry.payloadBytes == 10_485_760)
        #expect(v.state.onboard?.accounting.jobs == 1)
        let reply = InferenceReply(requestID: "veh/1", attempt: 2, status: .completed, servedBy: "cloud", route: ["cloud"],
                                   queueWait: 0, computeTime: 0.4, resultBytes: 2000)
        v.script.send(.frames(.access, frames(reply, from: "cloud", at: 2.1, prefix: "cloud")), at: 2.1)
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" })
        #expect(done.status == .completed && done.attempts == 2 && done.path == "macro")
        #expect(done.splitK == 8 && done.splitBytes == 10_485_760 && abs(done.lowerStageMs! - 61.181) < 1)
        // Latency counts from the request's creation, on-board stage included.
        #expect(abs(done.latencyMs! - (2.1 - opened.createdAt) * 1000) < 1e-6)
    }

    @Test func splittingAtZeroIsTodaysRemotePath() {
        func sends(_ split: SplitChoice?) -> [Outbound] {
            var v = vehicle(scenario(split: split))
            v.beacons(from: 0, to: 3.0, rsus: ["rsu-a"])
            return v.script.sends.map(\.message)
        }
        let plain = sends(nil)
        #expect(plain.contains { $0.kind == .request })
        #expect(sends(.fixed(0)) == plain)
    }

    @Test func splittingAtEveryLayerIsTodaysOnBoardPath() throws {
        func run(_ scenario: Scenario) -> VehicleScript {
            var scenario = scenario
            scenario.workload.tasks[0].model = "llama-3-8b-q4"  // done on the Orin within the deadline
            var v = vehicle(scenario)
            v.beacons(from: 0, to: 5.0, rsus: ["rsu-a"])
            return v
        }
        let split = run(scenario(split: .fixed(32)))
        let local = run(scenario(split: nil, policy: "local-only"))
        #expect(split.script.sends.allSatisfy { $0.message.kind != .request }, "nothing left the vehicle")
        let a = try #require(split.script.requests.last { $0.requestID == "veh/1" })
        let b = try #require(local.script.requests.last { $0.requestID == "veh/1" })
        #expect(a.status == .completed && a.path == "onboard" && a.splitK == 32)
        #expect(a.latencyMs == b.latencyMs && a.computeMs == b.computeMs && a.finishedAt == b.finishedAt)
        #expect(split.script.attempts == local.script.attempts)
    }

    @Test func theChosenSplitIsRecordedAndCarriedOut() throws {
        var v = vehicle(scenario(split: .auto))
        v.beacons(from: 0, to: 3.0, rsus: ["rsu-a"])
        let done = try #require(v.script.requests.last { $0.requestID == "veh/1" && $0.splitK != nil })
        let k = try #require(done.splitK)
        #expect((0...32).contains(k))
        if k > 0 && k < 32 {
            #expect(v.script.sends.compactMap { $0.message.decoded(InferenceRequest.self) }.first?.splitAt == UInt16(k))
        }
    }
}
