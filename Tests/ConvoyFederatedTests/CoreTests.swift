import ConvoyWire
import Testing
@testable import ConvoyFederated

/// The aggregator and participant state machines, driven by scripted events (no sockets, no sleeps).
@Suite struct FedAggregatorTests {
    static func config(_ scheme: FedTuneConfig.Scheme, clients: [String] = ["a", "b"]) -> FedTuneConfig {
        var c = FedTuneConfig()
        c.scheme = scheme
        c.domains = ["x", "y"]
        c.clients = FedTuneConfig.split(vehicles: clients, domains: ["x", "y"], dominant: 1)
        c.aggregator = "edge-1"
        c.rounds = 3
        c.startAt = 1
        c.roundDeadline = 10
        c.chunkBytes = 8
        c.clusters = 2
        return c
    }

    /// Starts an aggregator with a 4-parameter zero model (16 bytes: two chunks of 8).
    static func started(_ config: FedTuneConfig) -> (FedAggregator, [FedAggregator.Action]) {
        var agg = FedAggregator(config: config, id: "edge-1")
        let armed = agg.handle(.initial(Adapter(zeros: 4)), now: 0)
        guard case .arm(let t, let at) = armed.first else { fatalError("no start timer") }
        #expect(at == 1)
        let opened = agg.handle(.timer(t), now: 1)
        return (agg, opened)
    }

    static func upload(_ v: String, _ values: [Float], version: UInt32, transfer: UInt32 = 1, samples: UInt32 = 10,
                       chunks: [Int] = [0, 1]) -> [FedUp] {
        let parts = Chunking.chunks(of: Adapter(values).bytes, size: 8)
        return chunks.map {
            FedUp(kind: .chunk, vehicleID: v, version: version, transfer: transfer, index: UInt16($0), count: UInt16(parts.count),
                  totalBytes: 16, samples: samples, loss: 2, trainSeconds: 0.5, data: parts[$0])
        }
    }

    static func sends(_ actions: [FedAggregator.Action]) -> [FedDown] {
        actions.compactMap { if case .send(let d) = $0 { d } else { nil } }
    }

    static func updates(_ actions: [FedAggregator.Action]) -> [FedUpdateRecord] {
        actions.compactMap { if case .update(let u) = $0 { u } else { nil } }
    }

    @Test func synchronousRoundAveragesAndMovesOn() {
        var (agg, _) = Self.started(Self.config(.fedavg))
        let down = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5))
        #expect(down.count == 2 && down.allSatisfy { $0.kind == .chunk && $0.version == 0 && $0.steps == 3 })
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-2"), now: 1.6)
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("a", [1, 1, 1, 1], version: 0, samples: 30) { actions += agg.handle(.up(c, via: "rsu-1"), now: 3) }
        #expect(Self.sends(actions).last?.status == .accepted)
        #expect(agg.version == 0)
        actions = []
        for c in Self.upload("b", [5, 5, 5, 5], version: 0, samples: 10) { actions += agg.handle(.up(c, via: "rsu-2"), now: 4) }
        // Both in: round 1 closes, version 1 = (30·1 + 10·5)/40 = 2.
        #expect(agg.version == 1)
        #expect(agg.models[0] == Adapter([2, 2, 2, 2]))
        #expect(Self.updates(actions).map(\.outcome) == [.aggregated, .aggregated])
        let round = actions.compactMap { if case .round(let r) = $0 { r } else { nil } }
        #expect(round.count == 1 && round[0].aggregated == 2 && round[0].dropped == 0 && round[0].endedAt == 4)
        // The model is evaluated, and the mean over clients recorded when the trainer answers.
        guard case .evaluate(let id, let model, let domains)? = actions.first(where: { if case .evaluate = $0 { true } else { false } }) else {
            Issue.record("no evaluation"); return
        }
        #expect(model == Adapter([2, 2, 2, 2]) && domains == ["x", "y"])
        let evals = agg.handle(.evaluated(id: id, losses: ["x": 1, "y": 3], failure: nil), now: 5)
            .compactMap { if case .eval(let e) = $0 { e } else { nil } }
        #expect(evals.first { $0.domain == "*" }?.loss == 2)
    }

    @Test func deadlineClosesTheRoundAndRecordsTheLostUpload() {
        var (agg, _) = Self.started(Self.config(.fedavg))
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5)
        let opened = agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-1"), now: 1.5)
        #expect(Self.sends(opened).count == 2)
        for c in Self.upload("a", [1, 1, 1, 1], version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        // b's upload: only its first chunk arrives (its RSU died).
        let partial = agg.handle(.up(Self.upload("b", [9, 9, 9, 9], version: 0, chunks: [0])[0], via: "rsu-1"), now: 3)
        #expect(Self.sends(partial).isEmpty)
        // The aggregator tells b what is missing when asked.
        let ack = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0, transfer: 1), via: "rsu-2"), now: 4))
        #expect(ack.first?.status == .incomplete && ack.first?.missing == [1])
        // The deadline (opened at 1 + 10 s).
        let timer = agg.deadlineTimer!
        let closed = agg.handle(.timer(timer), now: 11)
        let rows = Self.updates(closed)
        #expect(rows.first { $0.vehicleID == "b" }?.outcome == .lost)
        #expect(rows.first { $0.vehicleID == "b" }?.chunksReceived == 1)
        #expect(agg.models[0] == Adapter([1, 1, 1, 1]))
        // The last chunk comes after the close: not aggregated, the vehicle is told.
        let late = agg.handle(.up(Self.upload("b", [9, 9, 9, 9], version: 0, chunks: [1])[0], via: "rsu-2"), now: 12)
        #expect(Self.sends(late).isEmpty || Self.sends(late).first?.status != .accepted)
        // b's next upload (round 2) starts: its lost one is not recorded a second time.
        let next = agg.handle(.up(Self.upload("b", [9, 9, 9, 9], version: 1, transfer: 2, chunks: [0])[0], via: "rsu-2"), now: 13)
        #expect(Self.updates(next).isEmpty, "\(Self.updates(next))")
    }

    @Test func resumedUploadThroughAnotherRSUIsAggregated() {
        var (agg, _) = Self.started(Self.config(.fedavg, clients: ["a"]))
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5)
        let parts = Self.upload("a", [3, 3, 3, 3], version: 0)
        _ = agg.handle(.up(parts[0], via: "rsu-1"), now: 3)
        let actions = agg.handle(.up(parts[1], via: "rsu-2"), now: 5)
        let row = Self.updates(actions).first
        #expect(row?.outcome == .aggregated && row?.via == "rsu-1+rsu-2")
        #expect(agg.version == 1)
    }

    @Test func clusteredByLabelsKeepsOneModelPerCluster() {
        var (agg, _) = Self.started(Self.config(.clustered))
        for v in ["a", "b"] { _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: v, version: 0), via: "rsu-1"), now: 1.5) }
        for c in Self.upload("a", [1, 1, 1, 1], version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        for c in Self.upload("b", [7, 7, 7, 7], version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        #expect(agg.version == 1)
        #expect(Set(agg.models.values) == [Adapter([1, 1, 1, 1]), Adapter([7, 7, 7, 7])])
        let down = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 1), via: "rsu-1"), now: 4))
        #expect(Adapter(bytes: down.flatMap(\.data)) == Adapter([7, 7, 7, 7]))
    }

    @Test func clusteredByUpdatesFindsTheGroups() {
        var config = Self.config(.clustered, clients: ["a", "b", "c", "d"])
        config.clusterBy = .updates
        var (agg, _) = Self.started(config)
        for v in ["a", "b", "c", "d"] { _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: v, version: 0), via: "rsu-1"), now: 1.5) }
        for (v, x) in [("a", [Float(1), 0, 0, 0]), ("b", [2, 0.1, 0, 0]), ("c", [0, 0, 1, 0]), ("d", [0, 0, 3, 0.2])] {
            for c in Self.upload(v, x, version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        }
        #expect(agg.clusterOf["a"] == agg.clusterOf["b"] && agg.clusterOf["c"] == agg.clusterOf["d"] && agg.clusterOf["a"] != agg.clusterOf["c"])
    }

    @Test func fedAsyncMixesAsUpdatesArriveAndRefusesTheStale() {
        var config = Self.config(.fedasync)
        config.maxStaleness = 1
        config.rounds = 10
        var (agg, _) = Self.started(config)
        let first = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 2))
        #expect(first.count == 2)  // at once: no round barrier
        for c in Self.upload("a", [10, 10, 10, 10], version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        #expect(agg.version == 1 && agg.models[0] == Adapter([6, 6, 6, 6]))
        for c in Self.upload("a", [10, 10, 10, 10], version: 1, transfer: 2) { _ = agg.handle(.up(c, via: "rsu-1"), now: 4) }
        #expect(agg.version == 2)
        // b trained from version 0: staleness 2 > 1.
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("b", [0, 0, 0, 0], version: 0) { actions += agg.handle(.up(c, via: "rsu-1"), now: 5) }
        #expect(Self.updates(actions).first?.outcome == .stale && Self.updates(actions).first?.staleness == 2)
        #expect(Self.sends(actions).last?.status == .discarded)
    }

    /// The global level of hierarchical: its clients are the RSU groups (each speaks for itself),
    /// handed the global model with κ2 as their "steps"; their models are averaged by the samples
    /// behind them, and records number rounds in group rounds (version 1 = round κ2).
    @Test func hierarchicalTopAveragesTheGroupsModels() {
        var config = Self.config(.hierarchical, clients: ["a", "b", "c"])
        config.kappa2 = 2
        config.rounds = 4
        var (agg, _) = Self.started(config)
        #expect(agg.handle(.up(FedUp(kind: .pull, vehicleID: "rsu-9", version: 0), via: "rsu-1"), now: 1.2) == [.count("fed_unknown_client")])
        let down = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "rsu-1", version: 0), via: "rsu-1"), now: 1.5))
        #expect(down.count == 2 && down.allSatisfy { $0.vehicleID == "rsu-1" && $0.steps == 2 })
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "rsu-2", version: 0), via: "rsu-2"), now: 1.5)
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("rsu-1", [2, 2, 2, 2], version: 0, samples: 30) { actions += agg.handle(.up(c, via: "rsu-1"), now: 20) }
        #expect(agg.version == 0)
        for c in Self.upload("rsu-2", [6, 6, 6, 6], version: 0, samples: 10) { actions += agg.handle(.up(c, via: "rsu-2"), now: 21) }
        // (30·2 + 10·6) / 40 = 3.
        #expect(agg.version == 1 && agg.models[0] == Adapter([3, 3, 3, 3]))
        let rounds = actions.compactMap { if case .round(let r) = $0 { r } else { nil } }
        #expect(rounds.map(\.round) == [2] && rounds.map(\.level) == ["global"] && rounds.first?.aggregated == 2)
        #expect(Self.updates(actions).map(\.round) == [2, 2])
        let evals = actions.compactMap { if case .evaluate(let id, _, _) = $0 { id } else { nil } }
        let mean = agg.handle(.evaluated(id: evals[0], losses: ["x": 1, "y": 2], failure: nil), now: 22)
        #expect(mean.contains { if case .eval(let e) = $0 { e.domain == "*" && e.round == 2 } else { false } })
        // Version 2 = round 4 = the configured rounds: training is over. (Transfer 1 again, for
        // another version: a new upload, as from a restarted RSU.)
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "rsu-1", version: 0), via: "rsu-1"), now: 22)
        for c in Self.upload("rsu-1", [1, 1, 1, 1], version: 1, transfer: 1) { _ = agg.handle(.up(c, via: "rsu-1"), now: 40) }
        #expect(agg.version == 2 && agg.finished)
    }

    /// An RSU's group: its vehicles' pulls make it ask the global level for the model; it runs κ2
    /// rounds of its vehicles from it, hands its model up in chunks, and runs the next κ2 rounds
    /// from the next global model; when the global level has finished, so do its vehicles.
    @Test func hierarchicalGroupRunsKappa2RoundsThenHandsItsModelUp() {
        var config = Self.config(.hierarchical)
        config.kappa2 = 2
        var group = GroupAggregator(config: config, id: "rsu-1", index: 1, incarnation: 2)
        func ups(_ actions: [FedAggregator.Action]) -> [FedUp] { actions.compactMap { if case .sendUp(let u) = $0 { u } else { nil } } }
        #expect(ups(group.handle(.timer(GroupAggregator.tickTimer), now: 0.5)).isEmpty)  // nobody waits: no pull
        let asked = ups(group.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1))
        #expect(asked.map(\.kind) == [.pull] && asked.first?.vehicleID == "rsu-1")
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-1"), now: 1.1)
        // The global model (version 0) arrives: round 1 opens for both vehicles.
        var actions: [FedAggregator.Action] = []
        for d in FedParticipantTests.chunks([1, 1, 1, 1], version: 0, to: "rsu-1") { actions += group.down(d, now: 1.5) }
        let handed = Self.sends(actions)
        #expect(Set(handed.map(\.vehicleID)) == ["a", "b"] && handed.allSatisfy { $0.version == 0 && $0.steps == 3 })
        #expect(Adapter(bytes: handed.filter { $0.vehicleID == "a" }.flatMap(\.data)) == Adapter([1, 1, 1, 1]))
        func round(_ a: [Float], _ b: [Float], version: UInt32, at t: Double) -> [FedAggregator.Action] {
            var actions: [FedAggregator.Action] = []
            for c in Self.upload("a", a, version: version, transfer: version + 1, samples: 10) { actions += group.handle(.up(c, via: "rsu-1"), now: t) }
            for c in Self.upload("b", b, version: version, transfer: version + 1, samples: 30) { actions += group.handle(.up(c, via: "rsu-1"), now: t) }
            return actions
        }
        actions = round([1, 1, 1, 1], [5, 5, 5, 5], version: 0, at: 5)
        let first = actions.compactMap { if case .round(let r) = $0 { r } else { nil } }
        #expect(first.map(\.round) == [1] && first.map(\.level) == ["group"] && first.first?.cluster == 1 && first.first?.aggregatedAt == "rsu-1")
        #expect(actions.contains { if case .evaluate = $0 { true } else { false } })  // rounds within a cycle are evaluated here
        #expect(ups(actions).isEmpty)
        // Round 2 = κ2: nothing is evaluated here; the model (10·1 + 30·5)/40 = 4 → round 2 → 4 goes up.
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 1), via: "rsu-1"), now: 5.1)
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 1), via: "rsu-1"), now: 5.1)
        actions = round([4, 4, 4, 4], [4, 4, 4, 4], version: 1, at: 9)
        #expect(!actions.contains { if case .evaluate = $0 { true } else { false } })
        let wakes = actions.compactMap { if case .arm(GroupAggregator.wakeTimer, let at) = $0 { at } else { nil } }
        guard let at = wakes.first else { Issue.record("no wake: \(actions)"); return }
        let chunks = ups(group.handle(.timer(GroupAggregator.wakeTimer), now: at))
        #expect(chunks.count == 2 && chunks.allSatisfy { $0.kind == .chunk && $0.vehicleID == "rsu-1" && $0.samples == 80 && $0.version == 0 })
        #expect(chunks.allSatisfy { $0.transfer == 1 << 16 + 1 })  // incarnation 2 numbers its uploads past incarnation 1's
        #expect(Adapter(bytes: chunks.flatMap(\.data)) == Adapter([4, 4, 4, 4]))
        // The global level takes it; vehicles that pull meanwhile make the group ask for the next model.
        _ = group.down(FedDown(kind: .ack, vehicleID: "rsu-1", version: 0, transfer: chunks[0].transfer, status: .accepted), now: 9.5)
        #expect(ups(group.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 2), via: "rsu-1"), now: 10)).map(\.kind) == [.pull])
        actions = []
        for d in FedParticipantTests.chunks([7, 7, 7, 7], version: 1, to: "rsu-1") { actions += group.down(d, now: 11) }
        // Global version 1 = group round 2: vehicles now train round 3 from it.
        #expect(Self.sends(actions).filter { $0.vehicleID == "a" }.allSatisfy { $0.version == 2 } && group.local.version == 2)
        // The global level finished: so does the group, and its vehicles are told.
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 2), via: "rsu-1"), now: 11.5)
        let over = Self.sends(group.down(FedDown(kind: .ack, vehicleID: "rsu-1", version: 2, status: .finished), now: 12))
        #expect(group.local.finished && over.isEmpty)
        let late = Self.sends(group.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 13))
        #expect(late.map(\.status) == [.finished])
    }

    /// A restarted RSU group goes on from its last closed round when the global model it gets is
    /// the one that round came from, hands a finished cycle up at once, and ignores an outdated checkpoint.
    @Test func aRestartedGroupGoesOnFromItsLastRound() {
        var config = Self.config(.hierarchical)
        config.kappa2 = 2
        func ups(_ actions: [FedAggregator.Action]) -> [FedUp] { actions.compactMap { if case .sendUp(let u) = $0 { u } else { nil } } }
        func checkpoints(_ actions: [FedAggregator.Action]) -> [FedCheckpoint] {
            actions.compactMap { if case .checkpoint(let c) = $0 { c } else { nil } }
        }
        /// The chunks the group sends up once its participant's wake-up fires.
        func handedUp(_ group: inout GroupAggregator, _ actions: [FedAggregator.Action]) -> [FedUp] {
            guard let at = actions.compactMap({ if case .arm(GroupAggregator.wakeTimer, let at) = $0 { at } else { nil } }).first else { return [] }
            return ups(group.handle(.timer(GroupAggregator.wakeTimer), now: at))
        }
        var group = GroupAggregator(config: config, id: "rsu-1", index: 1)
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1)
        _ = group.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-1"), now: 1.1)
        for d in FedParticipantTests.chunks([1, 1, 1, 1], version: 0, to: "rsu-1") { _ = group.down(d, now: 1.5) }
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("a", [1, 1, 1, 1], version: 0, samples: 10) + Self.upload("b", [5, 5, 5, 5], version: 0, samples: 30) {
            actions += group.handle(.up(c, via: "rsu-1"), now: 5)
        }
        let afterRound1 = checkpoints(actions)
        #expect(afterRound1.map(\.version) == [1] && afterRound1.first?.cycleSamples == 40 && afterRound1.first?.cycleLosses == [2, 2])

        /// A new incarnation from `checkpoint`, given global model `global` (all 9s) after a vehicle pulls.
        func restarted(_ checkpoint: FedCheckpoint, global: UInt32) -> (GroupAggregator, [FedAggregator.Action]) {
            var g = GroupAggregator(config: config, id: "rsu-1", index: 1, incarnation: 2, resume: checkpoint.encoded())
            _ = g.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 1), via: "rsu-1"), now: 20)
            var actions: [FedAggregator.Action] = []
            for d in FedParticipantTests.chunks([9, 9, 9, 9], version: global, to: "rsu-1") { actions += g.down(d, now: 21) }
            return (g, actions)
        }
        // The global level is still at version 0: round 2 opens from the group's own round-1 model, (10·1 + 30·5)/40 = 4.
        var (resumed, opened) = restarted(afterRound1[0], global: 0)
        #expect(resumed.local.version == 1 && opened.contains(.setCounter("fed_resumed_from_version", 1)))
        let handed = Self.sends(opened)
        #expect(handed.map(\.vehicleID) == ["a", "a"] && handed.allSatisfy { $0.version == 1 })
        #expect(Adapter(bytes: handed.flatMap(\.data)) == Adapter([4, 4, 4, 4]))
        // Round 2 (a alone) closes the cycle: the samples of both rounds go up with round 2's model.
        actions = []
        for c in Self.upload("a", [6, 6, 6, 6], version: 1, transfer: 2, samples: 10) { actions += resumed.handle(.up(c, via: "rsu-1"), now: 25) }
        let up = handedUp(&resumed, actions)
        #expect(up.count == 2 && up.allSatisfy { $0.samples == 50 && $0.version == 0 } && Adapter(bytes: up.flatMap(\.data)) == Adapter([6, 6, 6, 6]))
        // Dead again before the global level had it: the next incarnation hands the finished cycle up at once.
        guard let afterRound2 = checkpoints(actions).first else { Issue.record("no checkpoint: \(actions)"); return }
        #expect(afterRound2.version == 2)
        var (again, handing) = restarted(afterRound2, global: 0)
        let reUp = handedUp(&again, handing)
        #expect(reUp.count == 2 && reUp.allSatisfy { $0.samples == 50 } && Adapter(bytes: reUp.flatMap(\.data)) == Adapter([6, 6, 6, 6]))
        #expect(Self.sends(handing).isEmpty)
        // The global level has moved past the checkpoint's cycle: its model wins.
        let (outdated, fresh) = restarted(afterRound1[0], global: 1)
        #expect(outdated.local.version == 2 && fresh.contains(.count("fed_checkpoint_outdated")))
        #expect(Adapter(bytes: Self.sends(fresh).flatMap(\.data)) == Adapter([9, 9, 9, 9]))
        // An update reaching a restarted group before it has any model (trained at another RSU) is late, not malformed.
        var empty = GroupAggregator(config: config, id: "rsu-1", index: 1, incarnation: 3)
        actions = []
        for c in Self.upload("b", [3, 3, 3, 3], version: 1, transfer: 2) { actions += empty.handle(.up(c, via: "rsu-1"), now: 30) }
        #expect(Self.updates(actions).map(\.outcome) == [.late] && actions.contains(.count("fed_updates_before_model")))
        #expect(Self.sends(actions).last?.status == .discarded)
    }

    /// The updates an aggregator has accepted in its open round are in its pending file until the
    /// round closes (then recorded); if it dies first, its next incarnation records them as lost.
    @Test func updatesAcceptedInTheOpenRoundAreRecordedAsLostAfterACrash() {
        var (agg, _) = Self.started(Self.config(.fedavg))
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5)
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-1"), now: 1.5)
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("a", [1, 1, 1, 1], version: 0) { actions += agg.handle(.up(c, via: "rsu-1"), now: 3) }
        let pending = actions.compactMap { if case .pending(let r) = $0 { r } else { nil } }
        #expect(pending.count == 1 && pending[0].map(\.vehicleID) == ["a"] && pending[0].allSatisfy { $0.outcome == .aggregated })
        #expect(Self.updates(actions).isEmpty && Self.sends(actions).last?.status == .accepted)
        guard let file = pending.first.map(FedCheckpoint.encodePending) else { return }
        #expect(FedCheckpoint.decodePending(file) == pending[0])

        var restarted = FedAggregator(config: Self.config(.fedavg), id: "edge-1", pending: file)
        let first = restarted.handle(.initial(Adapter(zeros: 4)), now: 10)
        let lost = Self.updates(first)
        #expect(lost.map(\.vehicleID) == ["a"] && lost.allSatisfy { $0.outcome == .lost && $0.round == 1 && $0.bytes == 16 && $0.samples == 10 })
        #expect(first.contains(.count("fed_updates_lost_with_aggregator", by: 1)) && first.contains(.pending([])))
        #expect(Self.updates(restarted.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 11)).isEmpty)
        // Had it lived, the round's close would have recorded both and emptied the file.
        var lived = agg
        actions = []
        for c in Self.upload("b", [3, 3, 3, 3], version: 0) { actions += lived.handle(.up(c, via: "rsu-1"), now: 4) }
        #expect(Self.updates(actions).count == 2 && actions.last(where: { if case .pending = $0 { true } else { false } }) == .pending([]))
        // Had the run ended instead, a's update would be recorded as accepted but never applied.
        let ended = agg.handle(.stop, now: 4)
        #expect(Self.updates(ended).map(\.outcome) == [.unapplied] && Self.updates(ended).first?.vehicleID == "a" && ended.contains(.pending([])))
    }

    /// FedBuff records an update when its buffer is applied: one still in the buffer is pending
    /// (lost if the aggregator dies, unapplied if the run ends).
    @Test func fedBuffRecordsUpdatesWhenItsBufferIsApplied() {
        var config = Self.config(.fedbuff, clients: ["a", "b", "c"])
        config.bufferSize = 2
        var (agg, _) = Self.started(config)
        for v in ["a", "b", "c"] { _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: v, version: 0), via: "rsu-1"), now: 1.5) }
        func upload(_ v: String, at t: Double) -> [FedAggregator.Action] {
            Self.upload(v, [2, 2, 2, 2], version: 0).flatMap { agg.handle(.up($0, via: "rsu-1"), now: t) }
        }
        let first = upload("a", at: 2)
        #expect(Self.updates(first).isEmpty && first.contains(.pending(agg.buffered)) && agg.buffered.map(\.vehicleID) == ["a"])
        #expect(Self.sends(first).last?.status == .accepted)
        let second = upload("b", at: 3)
        #expect(Self.updates(second).map(\.vehicleID) == ["a", "b"] && Self.updates(second).allSatisfy { $0.outcome == .aggregated && $0.round == 1 })
        #expect(second.contains(.pending([])) && agg.version == 1)
        _ = upload("c", at: 4)
        #expect(Self.updates(agg.handle(.stop, now: 5)).map(\.outcome) == [.unapplied])
    }

    /// Every new version leaves a checkpoint; an aggregator started from it carries on from that
    /// version with that model (and hands it out), and one that does not fit is counted and ignored.
    @Test func aRestartedAggregatorResumesFromItsCheckpoint() {
        var (agg, _) = Self.started(Self.config(.fedavg))
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5)
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "b", version: 0), via: "rsu-1"), now: 1.5)
        var actions: [FedAggregator.Action] = []
        for c in Self.upload("a", [1, 1, 1, 1], version: 0) + Self.upload("b", [3, 3, 3, 3], version: 0) {
            actions += agg.handle(.up(c, via: "rsu-1"), now: 3)
        }
        let saved = actions.compactMap { if case .checkpoint(let c) = $0 { c } else { nil } }
        #expect(saved.count == 1 && saved[0].version == 1)
        guard let bytes = saved.first?.encoded() else { Issue.record("no checkpoint"); return }
        #expect(FedCheckpoint.decode(bytes) == saved[0])

        var restarted = FedAggregator(config: Self.config(.fedavg), id: "edge-1", resume: bytes)
        let started = restarted.handle(.initial(Adapter(zeros: 4)), now: 10)
        #expect(started.contains(.setCounter("fed_resumed_from_version", 1)))
        #expect(restarted.version == 1 && restarted.models[0] == Adapter([2, 2, 2, 2]))
        guard case .arm(let t, _)? = started.last else { Issue.record("no start timer"); return }
        _ = restarted.handle(.timer(t), now: 10)
        let down = Self.sends(restarted.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 11))
        #expect(down.allSatisfy { $0.version == 1 } && Adapter(bytes: down.flatMap(\.data)) == Adapter([2, 2, 2, 2]))

        // Another adapter size, another scheme, or a file that is not a checkpoint: not resumed.
        for (scheme, size, file) in [(FedTuneConfig.Scheme.fedavg, 6, bytes), (.fedasync, 4, bytes), (.fedavg, 4, Array("{\"version\": 3".utf8))] {
            var other = FedAggregator(config: Self.config(scheme), id: "edge-1", resume: file)
            #expect(other.handle(.initial(Adapter(zeros: size)), now: 10).contains(.count("fed_checkpoint_unusable")))
            #expect(other.version == 0)
        }
    }

    @Test func afterTheLastRoundVehiclesAreToldToStop() {
        var config = Self.config(.fedavg, clients: ["a"])
        config.rounds = 1
        var (agg, _) = Self.started(config)
        _ = agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 0), via: "rsu-1"), now: 1.5)
        for c in Self.upload("a", [1, 1, 1, 1], version: 0) { _ = agg.handle(.up(c, via: "rsu-1"), now: 3) }
        #expect(agg.finished)
        let reply = Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "a", version: 1), via: "rsu-1"), now: 4))
        #expect(reply.first?.status == .finished)
        #expect(Self.sends(agg.handle(.up(FedUp(kind: .pull, vehicleID: "zz", version: 0), via: "rsu-1"), now: 4)).isEmpty)
    }
}

@Suite struct FedParticipantTests {
    static func chunks(_ values: [Float], version: UInt32, to vehicle: String = "a") -> [FedDown] {
        let parts = Chunking.chunks(of: Adapter(values).bytes, size: 8)
        return parts.indices.map {
            FedDown(kind: .chunk, vehicleID: vehicle, version: version, steps: 3, transfer: version, index: UInt16($0),
                    count: UInt16(parts.count), totalBytes: 16, data: parts[$0])
        }
    }

    static func sent(_ actions: [FedParticipant.Action]) -> [(FedUp, String)] {
        actions.compactMap { if case .send(let m, let via) = $0 { (m, via) } else { nil } }
    }

    @Test func pullTrainUploadAndResumeThroughAnotherRSU() {
        var p = FedParticipant(vehicle: "a", trainSeconds: 2, transferTimeout: 5, chunkBytes: 8)
        #expect(p.handle(.tick(via: nil), now: 0).isEmpty)  // no RSU: nothing
        let pull = Self.sent(p.handle(.tick(via: "rsu-1"), now: 1))
        #expect(pull.count == 1 && pull[0].0.kind == .pull && pull[0].1 == "rsu-1")
        #expect(Self.sent(p.handle(.tick(via: "rsu-1"), now: 2)).isEmpty)  // not again before the pull interval
        let parts = Self.chunks([1, 2, 3, 4], version: 0)
        #expect(p.handle(.down(parts[1]), now: 2.5).isEmpty)
        let train = p.handle(.down(parts[0]), now: 2.6)
        guard case .train(let id, let adapter, let steps)? = train.first else { Issue.record("no training"); return }
        #expect(adapter == Adapter([1, 2, 3, 4]) && steps == 3)
        // The real training is done at 3.0, before the emulated 2.6 + 2 = 4.6: held until then.
        let trained = p.handle(.trained(id: id, adapter: Adapter([5, 5, 5, 5]), samples: 64, loss: 2.5, realSeconds: 0.4, failure: nil), now: 3)
        #expect(trained == [.wake(at: 4.6)])
        #expect(Self.sent(p.handle(.tick(via: "rsu-1"), now: 4)).isEmpty)
        let up = Self.sent(p.handle(.tick(via: "rsu-1"), now: 4.6))
        #expect(up.count == 2 && up.allSatisfy { $0.0.kind == .chunk && $0.0.samples == 64 && $0.0.trainSeconds == 2 && $0.1 == "rsu-1" })
        #expect(Adapter(bytes: up.flatMap(\.0.data)) == Adapter([5, 5, 5, 5]))
        // No acknowledgement within the time-out: ask through the RSU of now.
        let probe = Self.sent(p.handle(.tick(via: "rsu-2"), now: 10))
        #expect(probe.count == 1 && probe[0].0.kind == .pull && probe[0].0.transfer == 1 && probe[0].1 == "rsu-2")
        // The aggregator has chunk 0 only: only chunk 1 is re-sent.
        let resent = Self.sent(p.handle(.down(FedDown(kind: .ack, vehicleID: "a", version: 0, transfer: 1, missing: [1])), now: 10.5))
        #expect(resent.map(\.0.index) == [1] && resent[0].1 == "rsu-2")
        _ = p.handle(.down(FedDown(kind: .ack, vehicleID: "a", version: 0, transfer: 1, status: .accepted)), now: 11)
        // Back to pulling for the next round.
        #expect(Self.sent(p.handle(.tick(via: "rsu-2"), now: 11.1)).first?.0.kind == .pull)
        _ = p.handle(.down(FedDown(kind: .ack, vehicleID: "a", version: 1, status: .finished)), now: 12)
        #expect(p.isFinished && p.handle(.tick(via: "rsu-2"), now: 20).isEmpty)
    }

    @Test func trainingSlowerThanTheDeviceIsAFidelityMiss() {
        var p = FedParticipant(vehicle: "a", trainSeconds: 1, chunkBytes: 8)
        _ = p.handle(.tick(via: "rsu-1"), now: 0)
        var train: [FedParticipant.Action] = []
        for c in Self.chunks([0, 0, 0, 0], version: 0) { train += p.handle(.down(c), now: 1) }
        guard case .train(let id, _, _)? = train.last else { Issue.record("no training"); return }
        let late = p.handle(.trained(id: id, adapter: Adapter([1, 1, 1, 1]), samples: 8, loss: 1, realSeconds: 3, failure: nil), now: 4)
        #expect(late.contains(.count("fed_training_late", 1)) && late.contains(.count("fed_training_late_ms", 2000)))
        #expect(late.contains(.wake(at: 4)))
    }

    @Test func aLostDownloadIsPulledAgain() {
        var p = FedParticipant(vehicle: "a", trainSeconds: 1, transferTimeout: 5, chunkBytes: 8)
        _ = p.handle(.tick(via: "rsu-1"), now: 0)
        _ = p.handle(.down(Self.chunks([0, 0, 0, 0], version: 0)[0]), now: 1)
        #expect(Self.sent(p.handle(.tick(via: "rsu-1"), now: 5)).isEmpty)
        #expect(Self.sent(p.handle(.tick(via: "rsu-1"), now: 6.5)).first?.0.kind == .pull)
    }

    @Test func aFailedTrainingGoesBackToPulling() {
        var p = FedParticipant(vehicle: "a", trainSeconds: 1, chunkBytes: 8)
        _ = p.handle(.tick(via: "rsu-1"), now: 0)
        var train: [FedParticipant.Action] = []
        for c in Self.chunks([0, 0, 0, 0], version: 0) { train += p.handle(.down(c), now: 1) }
        guard case .train(let id, _, _)? = train.last else { Issue.record("no training"); return }
        #expect(p.handle(.trained(id: id, adapter: nil, samples: 0, loss: 0, realSeconds: 0, failure: "trainer died"), now: 2)
            == [.count("fed_training_failed", 1)])
        #expect(Self.sent(p.handle(.tick(via: "rsu-1"), now: 2.1)).first?.0.kind == .pull)
    }
}
