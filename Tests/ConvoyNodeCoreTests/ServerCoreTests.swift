import ConvoyCore
import ConvoyLinks
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// The server core against scripted events.
@Suite struct ServerCoreTests {
    func request(_ id: String = "veh/1", attempt: UInt16 = 1, deadline: Double = 20, route: [String] = []) -> InferenceRequest {
        InferenceRequest(requestID: id, attempt: attempt, vehicleID: "veh", model: "llama-3-8b", inputTokens: 256, outputTokens: 32,
                         payloadBytes: 20_000, deadline: deadline, route: route)
    }

    /// A request from vehicle `veh` near rsu-a, as the RSU's ROUTER receives it.
    func fromVehicle<P: WirePayload>(_ payload: P, at time: Double) -> ServerCore.Event {
        .frames(.clients, frames(payload, from: "veh", at: time, position: Position(x: 50, y: 0), prefix: "veh"))
    }

    func replies(_ script: Script<ServerCore.Event>) -> [InferenceReply] {
        script.sends.compactMap { $0.message.decoded(InferenceReply.self) }
    }

    @Test func aCancelFreesComputeOnlyForThatAttempt() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        rsu.script.send(fromVehicle(request(attempt: 1), at: 0.1), at: 0.1)
        rsu.script.advance(to: 0.2)
        // A failover re-send of the same request reaches the same RSU: it joins the job.
        rsu.script.send(fromVehicle(request(attempt: 2), at: 0.2), at: 0.2)
        rsu.script.advance(to: 0.3)
        #expect(rsu.script.counters["requests_deduplicated"] == 1)
        let computeMs = try #require(rsu.script.counters["compute_ms"])
        #expect(computeMs > 0)
        // Attempt 1 is withdrawn: the job keeps computing for attempt 2, nothing is given back.
        rsu.script.send(fromVehicle(InferenceCancel(requestID: "veh/1", attempt: 1), at: 0.3), at: 0.3)
        rsu.script.advance(to: 0.4)
        #expect(rsu.script.counters["cancels_applied"] == 1)
        #expect(rsu.state.compute?.busy(now: 0.4) == 1)
        #expect(rsu.script.counters["compute_ms"] == computeMs)
        // Only attempt 2 is answered.
        rsu.script.advance(to: 10)
        #expect(replies(rsu.script).map(\.attempt) == [2])
        #expect(replies(rsu.script).first?.status == .completed)
        #expect(rsu.script.sends.first { $0.message.kind == .reply }?.message.channel == .client(routingID: Array("veh".utf8)))
        // A cancel after the answer is too late.
        rsu.script.send(fromVehicle(InferenceCancel(requestID: "veh/1", attempt: 2), at: 10), at: 10)
        rsu.script.advance(to: 10.1)
        #expect(rsu.script.counters["cancels_too_late"] == 1)
    }

    /// Whatever crosses the RSU's cell from a vehicle is sampled against the link model when it
    /// is carried out: requests, cancels, and the chunks of a fine-tuning upload.
    @Test func everyUplinkMessageIsSampledAgainstItsModelledInstant() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        let chunk = FedUp(kind: .chunk, vehicleID: "veh", version: 0, transfer: 1, index: 0, count: 1, totalBytes: 4, data: [0, 0, 0, 0])
        rsu.script.send(fromVehicle(request(), at: 0.1), at: 0.1)
        rsu.script.send(fromVehicle(InferenceCancel(requestID: "veh/1", attempt: 1), at: 0.2), at: 0.2)
        rsu.script.send(fromVehicle(chunk, at: 0.3), at: 0.3)
        rsu.script.advance(to: 1)
        let observed = rsu.script.log.compactMap { entry -> (MessageKind, Double, Double)? in
            guard case .observe(.cellularUp, let kind, _, let modelled, let actual) = entry.action else { return nil }
            return (kind, modelled, actual)
        }
        #expect(observed.map(\.0) == [.request, .cancel, .fedUp])
        #expect(observed.allSatisfy { $0.1 > 0.1 && $0.1 == $0.2 }, "delivered at the modelled instant: \(observed)")
    }

    /// A reply to a vehicle leaves `sendAhead` before the instant the cell delivers it, stamped
    /// with that instant; the vehicle holds it until then, and refuses frames stamped further
    /// ahead than its lead. A message to another server still leaves at its instant.
    @Test func aReplyToAVehicleLeavesAheadAndIsHeldUntilItsInstant() throws {
        var rsu = try ServerScript("rsu-a", sendAhead: 0.01)
        rsu.script.send(.start, at: 0)
        rsu.script.send(fromVehicle(request(), at: 0.1), at: 0.1)
        rsu.script.advance(to: 10)
        let sent = try #require(rsu.script.sends.first { $0.message.kind == .reply }?.message)
        let due = try #require(sent.deliverAt)
        #expect(abs((sent.at ?? 0) - (due - 0.01)) < 1e-9)

        var v = VehicleScript(.init(id: "veh", scenario: testScenario(), seed: 7, duration: 60,
                                    trajectory: straightLine("veh", from: 100, to: 101), beaconLead: 0.05))
        v.script.send(.start, at: 0)
        let reply = try #require(sent.decoded(InferenceReply.self))
        v.script.send(.frames(.access, frames(reply, from: "rsu-a", at: due - 0.01, prefix: "rsu-a", deliverAt: due)), at: due - 0.01)
        func observed() -> [(Double, Double)] {
            v.script.log.compactMap { entry in
                if case .observe(.cellularDown, .reply, _, let modelled, let actual) = entry.action { (modelled, actual) } else { nil }
            }
        }
        #expect(observed().isEmpty)
        v.script.advance(to: due)
        #expect(observed().count == 1 && observed().first.map { abs($0.0 - due) < 1e-6 && $0.1 == $0.0 } == true, "\(observed())")
        v.script.send(.frames(.access, frames(reply, from: "rsu-a", at: due, prefix: "rsu-a", deliverAt: due + 0.2)), at: due)
        #expect(v.script.counters["access_stamped_ahead_refused"] == 1)
    }

    @Test func cancellingTheOnlyAttemptGivesTheComputeBack() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        rsu.script.send(fromVehicle(request(), at: 0.1), at: 0.1)
        rsu.script.advance(to: 0.2)
        let computeMs = try #require(rsu.script.counters["compute_ms"])
        rsu.script.send(fromVehicle(InferenceCancel(requestID: "veh/1", attempt: 1), at: 0.5), at: 0.5)
        rsu.script.advance(to: 10)
        #expect(rsu.state.compute?.busy(now: 0.6) == 0)
        #expect((rsu.script.counters["compute_ms"] ?? 0) < computeMs)
        #expect(replies(rsu.script).isEmpty)
    }

    @Test func aRelayedRequestIsRefusedWhenTheNextHopDies() throws {
        // rsu-b has no compute: it relays to edge-1 while edge-1 beacons, and refuses at once when it falls silent.
        var rsu = try ServerScript("rsu-b")
        #expect(rsu.state.upstreamBeaconTopic == Topic.edgeBeacon)
        rsu.script.send(.start, at: 0)
        var t = 0.0
        while t < 1 {
            rsu.script.send(.frames(.beacons, frames(Beacon(role: .edge), from: "edge-1", at: t, prefix: Topic.edgeBeacon)), at: t)
            t += 0.1
        }
        let near = Position(x: 400, y: 0)
        rsu.script.send(.frames(.clients, frames(request(), from: "veh", at: 1, position: near, prefix: "veh")), at: 1)
        rsu.script.advance(to: 1.1)
        let forwarded = try #require(rsu.script.sends.first { $0.message.channel == .upstream })
        #expect(forwarded.message.decoded(InferenceRequest.self)?.route == ["rsu-b"])
        #expect(forwarded.message.deliverAt.map { $0 > forwarded.at } == true, "the backhaul delays it")
        rsu.script.advance(to: 2)
        let refusal = try #require(replies(rsu.script).first)
        #expect(refusal.status == .failed && refusal.detail == "edge-1 unreachable")
        #expect(rsu.script.records.contains { if case .detection(let d) = $0 { d.peer == "edge-1" && d.state == "dead" } else { false } })
        // Its cancel now reaches nothing.
        rsu.script.send(.frames(.clients, frames(InferenceCancel(requestID: "veh/1", attempt: 1), from: "veh", at: 2, position: near,
                                                 prefix: "veh")), at: 2)
        rsu.script.advance(to: 2.1)
        #expect(rsu.script.counters["cancels_too_late"] == 1, "it was answered (refused) here")
    }

    @Test func aPartitionedServerDropsEverythingButItsRecords() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        rsu.script.send(.imposed(.partition, nil), at: 0.05)
        rsu.script.send(fromVehicle(request(), at: 0.1), at: 0.1)
        rsu.script.advance(to: 1)
        #expect(rsu.script.sends.allSatisfy { $0.at == 0 }, "nothing after the partition: no beacon, no reply")
        #expect(rsu.script.counters["partition_dropped_in"] == 1)
        #expect((rsu.script.counters["partition_dropped_out"] ?? 0) > 0)
        #expect(rsu.script.log.contains { $0.action == .flushRecords })
        rsu.script.send(.imposed(nil, nil), at: 1)
        rsu.script.advance(to: 1.2)
        #expect(rsu.script.sends.contains { $0.message.kind == .beacon })
    }

    @Test func malformedFramesAreCountedAndDropped() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.frames(.clients, [Array("x".utf8)]), at: 0.1)
        rsu.script.send(.frames(.clients, [Array("x".utf8), Array("not convoy".utf8)]), at: 0.1)
        rsu.script.send(.frames(.clients, frames(Beacon(role: .rsu), from: "veh", at: 0.1, prefix: "veh")), at: 0.1)
        #expect(rsu.script.counters["frames_bad_shape"] == 1)
        #expect(rsu.script.counters["frames_bad_magic"] == 1)
        #expect(rsu.script.counters["unexpected_kind_\(MessageKind.beacon.rawValue)"] == 1)
        #expect(rsu.script.sends.isEmpty)
    }

    @Test func aRequestSentBeforeThisIncarnationStartedIsDropped() throws {
        // libzmq queues a request for a crashed RSU and hands it to the next incarnation on reconnect.
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 10)
        rsu.script.send(fromVehicle(request(), at: 6), at: 10.01)
        rsu.script.advance(to: 20)
        #expect(rsu.script.counters["requests_for_previous_incarnation"] == 1)
        #expect(replies(rsu.script).isEmpty)
        // One sent to this incarnation is served.
        rsu.script.send(fromVehicle(request("veh/2", deadline: 40), at: 20), at: 20)
        rsu.script.advance(to: 30)
        #expect(replies(rsu.script).map(\.requestID) == ["veh/2"])
    }

    @Test func aCancelForAnAttemptNeverSentIsUnknownNotTooLate() throws {
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        rsu.script.send(fromVehicle(InferenceCancel(requestID: "veh/99", attempt: 1), at: 0.1), at: 0.1)
        rsu.script.advance(to: 0.2)
        #expect(rsu.script.counters["cancels_unknown"] == 1)
        #expect(rsu.script.counters["cancels_too_late"] == nil)
    }

    @Test func anAttemptPastItsReplyByIsGivenUp() throws {
        // The deadline passes while the job waits behind a long one on the RSU's single slot.
        var rsu = try ServerScript("rsu-a")
        rsu.script.send(.start, at: 0)
        let slots = try #require(rsu.state.compute?.slots)
        for n in 0..<slots { rsu.script.send(fromVehicle(request("veh/long\(n)", deadline: 60), at: 0.1), at: 0.1) }
        rsu.script.send(fromVehicle(request("veh/short", deadline: 0.5), at: 0.1), at: 0.1)
        rsu.script.advance(to: 0.4)
        let before = try #require(rsu.script.counters["compute_ms"])
        rsu.script.advance(to: 60)
        #expect(rsu.script.counters["attempts_given_up_past_reply_by"] == 1)
        #expect((rsu.script.counters["compute_ms"] ?? 0) < before, "its compute was given back")
        #expect(!replies(rsu.script).contains { $0.requestID == "veh/short" })
    }

    @Test func busFramesOfTheWrongShapeAreCounted() throws {
        var rsu = try ServerScript("rsu-b")
        rsu.script.send(.start, at: 0)
        rsu.script.send(.frames(.beacons, [Array(Topic.edgeBeacon.utf8)]), at: 0.1)
        rsu.script.send(.frames(.upstream, [[1], [2]]), at: 0.1)
        #expect(rsu.script.counters["frames_bad_shape"] == 2)
    }

    @Test func anAuthenticatedClientIsServedUnderItsOwnNameOnly() throws {
        var rsu = try ServerScript("rsu-a", vehicles: ["veh", "veh39"])
        rsu.script.send(.start, at: 0)
        func ask(_ request: InferenceRequest, sender: String, key: String?, at t: Double) {
            rsu.script.send(.frames(.clients, frames(request, from: sender, at: t, position: Position(x: 50, y: 0), prefix: sender), from: key),
                            at: t)
        }
        // The envelope claims another sender than the key's.
        ask(request("veh39/1"), sender: "veh39", key: "veh", at: 0.1)
        // The key's own name, but a request of another vehicle (a past id of veh39): not a V2V relay of
        // the run's vehicles, since the asker is an application client.
        ask(InferenceRequest(requestID: "veh39/1", attempt: 1, vehicleID: "veh39", model: "llama-3-8b", inputTokens: 8, outputTokens: 8,
                             payloadBytes: 100, deadline: 20), sender: "app", key: "app", at: 0.2)
        // A request id that is not its vehicle's.
        ask(InferenceRequest(requestID: "veh39/2", attempt: 1, vehicleID: "veh", model: "llama-3-8b", inputTokens: 8, outputTokens: 8,
                             payloadBytes: 100, deadline: 20), sender: "veh", key: "veh", at: 0.3)
        rsu.script.advance(to: 20)
        #expect(rsu.script.counters["requests_sender_mismatch"] == 1)
        #expect(rsu.script.counters["requests_for_another_sender"] == 1)
        #expect(rsu.script.counters["requests_id_mismatch"] == 1)
        #expect(replies(rsu.script).isEmpty)
        // Its own request, and a neighbour's relayed by a vehicle of the run, are served.
        ask(request("veh/5", deadline: 40), sender: "veh", key: "veh", at: 20)
        ask(InferenceRequest(requestID: "veh39/3", attempt: 1, vehicleID: "veh39", model: "llama-3-8b", inputTokens: 8, outputTokens: 8,
                             payloadBytes: 100, deadline: 40), sender: "veh", key: "veh", at: 20.1)
        rsu.script.advance(to: 40)
        #expect(Set(replies(rsu.script).map(\.requestID)) == ["veh/5", "veh39/3"])
        // An application client cannot withdraw a vehicle's attempt.
        rsu.script.send(.frames(.clients, frames(InferenceCancel(requestID: "veh/6", attempt: 1), from: "app", at: 40,
                                                 position: Position(x: 50, y: 0), prefix: "app"), from: "app"), at: 40)
        #expect(rsu.script.counters["cancels_for_another_sender"] == 1)
    }

    @Test func aServerThatIsNotOnTheMapIsAnInputError() {
        #expect(throws: InputError.self) { try ServerCore(id: "rsu-z", map: testMap, liveness: LivenessConfig(), seed: 1, incarnation: 1) }
    }
}

@Suite struct RelayTableTests {
    func request(_ id: String, _ attempt: UInt16 = 1) -> InferenceRequest {
        InferenceRequest(requestID: id, attempt: attempt, vehicleID: "v", model: "m", inputTokens: 1, outputTokens: 1, payloadBytes: 1,
                         deadline: 5)
    }

    @Test func repliesCancelsAndLostHops() {
        var table = RelayTable<String>()
        table.relayed(request("a"), from: "client-1", to: "hop-1")
        table.relayed(request("a", 2), from: "client-2", to: "hop-2")
        table.relayed(request("b"), from: "client-1", to: "hop-1")
        let reply = InferenceReply(requestID: "a", attempt: 2, status: .completed, servedBy: "hop-2", route: ["hop-2"])
        #expect(table.replied(reply)?.client == "client-2")
        #expect(table.replied(reply) == nil, "answered once")
        #expect(table.withdrawn(requestID: "b", attempt: 1)?.hop == "hop-1")
        #expect(table.hopLost("hop-1").map(\.request.requestID) == ["a"])
        #expect(table.count == 0)
    }
}
