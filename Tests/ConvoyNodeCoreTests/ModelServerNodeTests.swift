import ConvoyCore
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// A server whose compute is a real model server (map `backend:`), against scripted events: the
/// calls it asks its shell to make, their ends, the answers and the `outputs` rows, failures that
/// fail over, and the `backend-down` fault.
@Suite struct ModelServerNodeTests {
    /// rsu-a's compute is a model server serving smollm2-135m.
    static let map: MapSpec = {
        let yaml = """
        name: real
        cloud: { id: cloud, compute: { device: a100-80gb } }
        edges:
          - { id: edge-1, x: 200, y: 100, rsus: [rsu-a], compute: { device: rtx-4090 } }
        rsus:
          - id: rsu-a
            x: 0
            y: 0
            radius: 250
            compute:
              device: epyc-2vcpu
              slots: 1
              queue: 2
              backend: { kind: openai, url: "http://127.0.0.1:9", model: smollm2-135m, time_scale: 0.5 }
        """
        return try! MapSpec.parse(yaml, file: "real.yaml")
    }()

    func request(_ id: String = "veh/1", attempt: UInt16 = 1, model: String = "smollm2-135m", prompt: String = "Is the road clear?")
        -> ServerCore.Event {
        let r = InferenceRequest(requestID: id, attempt: attempt, vehicleID: "veh", model: model, inputTokens: 16, outputTokens: 8,
                                 payloadBytes: 100, deadline: 30, prompt: prompt)
        return .frames(.clients, frames(r, from: "veh", at: 0.1, position: Position(x: 50, y: 0), prefix: "veh"))
    }

    func calls(_ script: Script<ServerCore.Event>) -> [ComputeCommand] {
        script.log.compactMap { if case .compute(let c) = $0.action { c } else { nil } }
    }

    func replies(_ script: Script<ServerCore.Event>) -> [InferenceReply] {
        script.sends.compactMap { $0.message.decoded(InferenceReply.self) }
    }

    func outputs(_ script: Script<ServerCore.Event>) -> [OutputRecord] {
        script.records.compactMap { if case .output(let o) = $0 { o } else { nil } }
    }

    @Test func theRealPromptGoesToTheServerAndTheRealAnswerBack() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        rsu.script.send(request(), at: 0.1)
        rsu.script.advance(to: 0.2)
        #expect(calls(rsu.script) == [.run(ModelCall(requestID: "veh/1", model: "smollm2-135m", prompt: "Is the road clear?", maxTokens: 8))])
        // The call took 1.2 s of wall time and ended at 0.9: at scale 0.5 the answer is due at 0.7 → at once.
        rsu.script.send(.modelCallEnded(ModelCallResult(requestID: "veh/1", wallSeconds: 1.2, timeToFirstToken: 0.3, promptTokens: 9,
                                                        completionTokens: 4, answer: "Yes, it is.")), at: 0.9)
        rsu.script.advance(to: 2)
        let reply = try #require(replies(rsu.script).first)
        #expect(reply.status == .completed && reply.answer == "Yes, it is.")
        #expect(reply.resultBytes == UInt32("Yes, it is.".utf8.count))
        let output = try #require(outputs(rsu.script).first)
        #expect(output.requestID == "veh/1" && output.servedBy == "rsu-a" && output.model == "smollm2-135m")
        #expect(output.prompt == "Is the road clear?" && output.answer == "Yes, it is.")
        #expect(output.promptTokens == 9 && output.completionTokens == 4)
        #expect(output.ttftMs == 300 && output.wallMs == 1200)
        #expect(abs((output.decodeTokensPerS ?? 0) - 3 / 0.9) < 1e-9)
        #expect(abs(output.computeMs - 600) < 1e-9)
        // Started when the request came off the cell (0.1 plus the uplink), due 0.6 s later, answered at 0.9.
        #expect(abs(output.lateMs - (900 - output.startedAt * 1000 - 600)) < 1e-6)
        #expect(output.startedAt > 0.1 && output.startedAt < 0.15)
    }

    @Test func anAnswerDueLaterIsHeldUntilItsInstant() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        rsu.script.send(request(), at: 0.1)
        // 4 s of wall at scale 0.5: due 2 s after the call started (~0.11), though it ended at 1 (a slow emulation).
        rsu.script.send(.modelCallEnded(ModelCallResult(requestID: "veh/1", wallSeconds: 4, answer: "Yes.")), at: 1)
        rsu.script.advance(to: 2.05)
        #expect(replies(rsu.script).isEmpty)
        rsu.script.advance(to: 2.2)
        #expect(replies(rsu.script).count == 1)
        let at = try #require(rsu.script.sends.first { $0.message.kind == .reply }?.at)
        #expect(at > 2.1 && at < 2.15)
    }

    @Test func aFailedCallIsAFailedReplyWithTheReason() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        rsu.script.send(request(), at: 0.1)
        rsu.script.send(.modelCallEnded(ModelCallResult(requestID: "veh/1", wallSeconds: 0.01, failure: "connection refused")), at: 0.2)
        rsu.script.advance(to: 1)
        let reply = try #require(replies(rsu.script).first)
        #expect(reply.status == .failed && reply.detail == "connection refused" && reply.answer.isEmpty)
        #expect(outputs(rsu.script).first?.failure == "connection refused")
    }

    @Test func aCancelStopsTheCall() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        rsu.script.send(request(), at: 0.1)
        let cancel = InferenceCancel(requestID: "veh/1", attempt: 1)
        rsu.script.send(.frames(.clients, frames(cancel, from: "veh", at: 0.3, position: Position(x: 50, y: 0), prefix: "veh")), at: 0.3)
        rsu.script.advance(to: 0.5)
        #expect(calls(rsu.script).last == .abort(requestID: "veh/1"))
        rsu.script.send(.modelCallEnded(ModelCallResult(requestID: "veh/1", wallSeconds: 1, answer: "late")), at: 1)
        rsu.script.advance(to: 2)
        #expect(replies(rsu.script).isEmpty)
        #expect(outputs(rsu.script).isEmpty)
    }

    /// The edge server's beacons from `start` to `end` (so that rsu-a sees its next hop alive).
    func edgeBeacons(_ rsu: inout ServerScript, from start: Double, to end: Double) {
        var t = start
        while t < end {
            rsu.script.send(.frames(.beacons, frames(Beacon(role: .edge), from: "edge-1", at: t, prefix: Topic.edgeBeacon)), at: t)
            t += 0.1
        }
    }

    @Test func backendDownFailsTheCallInFlightAndForwardsNewRequestsUpstream() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        edgeBeacons(&rsu, from: 0, to: 1)
        rsu.script.send(request("veh/1"), at: 1)
        rsu.script.send(.imposed(.backendDown, nil), at: 1.05)
        edgeBeacons(&rsu, from: 1.1, to: 1.6)
        #expect(calls(rsu.script).last == .abort(requestID: "veh/1"))
        #expect(replies(rsu.script).first?.detail == "model server down")
        // While down, a new request goes to the edge server.
        rsu.script.send(request("veh/2"), at: 1.65)
        edgeBeacons(&rsu, from: 1.7, to: 2)
        #expect(rsu.script.sends.contains { $0.message.channel == .upstream && $0.message.decoded(InferenceRequest.self)?.requestID == "veh/2" })
        // Back up: served here again.
        rsu.script.send(.imposed(nil, nil), at: 2)
        rsu.script.send(request("veh/3"), at: 2.1)
        rsu.script.advance(to: 2.2)
        #expect(calls(rsu.script).last.map { if case .run(let c) = $0 { c.requestID } else { "" } } == "veh/3")
    }

    @Test func aCallPastItsReplyByIsStoppedAndNotAnswered() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        let late = InferenceRequest(requestID: "veh/9", attempt: 1, vehicleID: "veh", model: "smollm2-135m", inputTokens: 16,
                                    outputTokens: 8, payloadBytes: 100, deadline: 1.0, prompt: "Slow?")
        rsu.script.send(.frames(.clients, frames(late, from: "veh", at: 0.1, position: Position(x: 50, y: 0), prefix: "veh")), at: 0.1)
        rsu.script.advance(to: 1.5)
        #expect(calls(rsu.script).last == .abort(requestID: "veh/9"))
        #expect(rsu.script.counters["attempts_given_up_past_reply_by"] == 1)
        // The server's answer, arriving after all, goes nowhere.
        rsu.script.send(.modelCallEnded(ModelCallResult(requestID: "veh/9", wallSeconds: 2, answer: "Too late.")), at: 2.1)
        rsu.script.advance(to: 3)
        #expect(replies(rsu.script).isEmpty && outputs(rsu.script).isEmpty)
    }

    @Test func aRequestForAnotherModelIsForwarded() throws {
        var rsu = try ServerScript("rsu-a", map: Self.map)
        rsu.script.send(.start, at: 0)
        edgeBeacons(&rsu, from: 0, to: 1)
        rsu.script.send(request(model: "llama-3-8b"), at: 1)
        rsu.script.advance(to: 1.1)
        #expect(calls(rsu.script).isEmpty)
        #expect(rsu.script.sends.contains { $0.message.channel == .upstream })
    }

    @Test func aVehicleWithAnOnBoardModelServerAsksItAndRecordsTheAnswer() throws {
        var task = TaskSpec(name: "ask", model: "smollm2-135m", inputTokens: 16, outputTokens: 8, deadline: 5, payloadBytes: 100)
        task.prompts = ["Is the road clear?"]
        let onboard = ComputeSpec(device: "jetson-agx-orin", slots: 1, queue: 1,
                                  backend: BackendSpec(url: "http://127.0.0.1:9", model: "smollm2-135m"))
        let scenario = Scenario(name: "onboard-real", map: testMap, duration: 60,
                                workload: WorkloadSpec(arrival: .periodic, meanInterval: 10, tasks: [task]), onboard: onboard,
                                policy: "local-only")
        var v = VehicleScript(.init(id: "veh", scenario: scenario, seed: 7, duration: 60,
                                    trajectory: straightLine("veh", from: 100, to: 101)))
        v.script.send(.start, at: 0)
        v.beacons(from: 0, to: 1, rsus: ["rsu-a"])
        let call = try #require(v.script.log.compactMap { if case .compute(.run(let c)) = $0.action { c } else { nil } }.first)
        #expect(call.prompt == "Is the road clear?" && call.maxTokens == 8)
        v.script.send(.modelCallEnded(ModelCallResult(requestID: call.requestID, wallSeconds: 0.2, timeToFirstToken: 0.05,
                                                      completionTokens: 3, answer: "Yes.")), at: 1.1)
        v.beacons(from: 1.1, to: 1.5, rsus: ["rsu-a"])
        let done = try #require(v.script.requests.first { $0.requestID == call.requestID && $0.status != nil })
        #expect(done.status == .completed && done.path == "onboard")
        let output = try #require(v.script.records.compactMap { if case .output(let o) = $0 { o } else { nil } }.first)
        #expect(output.servedBy == "veh" && output.answer == "Yes." && output.prompt == "Is the road clear?")
    }
}
