import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// Federated fine-tuning with the real binary and the real trainer (tools/trainer, PEFT on the CPU
/// build of torch) on its tiny LLaMA-shaped model: adapters cross the emulated links in chunks,
/// an RSU crashes mid-training, and the trainer is killed in another run.
@Suite("End to end: federated fine-tuning", .serialized)
struct FedTuneTests {
    static let clients = ["v0", "v1", "v2", "v3"]

    static func scenario(rounds: Int, duration: Int, faults: String, scheme: String = "fedavg", fedtuneExtra: String = "") throws -> URL {
        let fedtune = """
        fedtune:
          scheme: \(scheme)
          kappa2: 2
          model: tiny
          timing: { model: smollm2-135m, device: epyc-2vcpu }
          adapter: { kind: lora, rank: 4, alpha: 8 }
          rounds: \(rounds)
          local_steps: 1
          batch: 4
          learning_rate: 0.01
          sequence_length: 32
          domains: [python, licenses]
          clients: [\(clients.joined(separator: ", "))]
          samples_per_client: 16
          test_samples_per_domain: 8
          aggregator: edge-1
          start_at: 1
          round_deadline: 6
          chunk_bytes: 2048
        \(fedtuneExtra)
        """
        let workload = "workload: { arrival: poisson, mean_interval: 10, model: llama-3-8b, input_tokens: 64, output_tokens: 8, deadline: 5 }"
        return try Fixture.makeScenario(duration: duration, faults: faults, workload: workload, extra: fedtune, vehicles: clients)
    }

    @Test(.timeLimit(.minutes(5)))
    func roundsCompleteAcrossAnRSUCrash() async throws {
        // One round takes about 3 s (the device's training time, then the upload): the crash falls into round 2.
        let dir = try Self.scenario(rounds: 4, duration: 30, faults: "  - { at: 5, node: rsu-1, mode: crash, for: 4 }\n")
        let run = dir.appendingPathComponent("run").path
        let fed = try await Fixture.launchToEnd(dir, timeout: 180).fetchFedTune()
        // Every round closed, in order, at the aggregator, with updates from the clients.
        #expect(fed.rounds.map(\.round) == [1, 2, 3, 4], "rounds: \(fed.rounds)")
        #expect(fed.rounds.allSatisfy { $0.aggregatedAt == "edge-1" && $0.aggregated >= 1 && $0.level == "global" })
        #expect(zip(fed.rounds, fed.rounds.dropFirst()).allSatisfy { $0.endedAt <= $1.startedAt + 1e-9 })
        // The adapter's real bytes: 2 layers × (q, v) × rank 4 × (64 + 64) float32 = 8,192 bytes, in 4 chunks of 2 KiB.
        let aggregated = fed.updates.filter { $0.outcome == .aggregated }
        #expect(aggregated.count >= 4)
        #expect(aggregated.allSatisfy { $0.bytes == 8192 && $0.chunks == 4 && $0.chunksReceived == 4 && $0.samples == 16 })
        #expect(Set(aggregated.map(\.vehicleID)).isSubset(of: Set(Self.clients)))
        // Local training took the device's time (epyc-2vcpu: seconds), uploads took the cell's.
        #expect(aggregated.allSatisfy { ($0.trainSeconds ?? 0) > 1 && ($0.uploadEndedAt ?? 0) > ($0.uploadStartedAt ?? .infinity) })
        // Held-out evaluation of every round's model; training lowered the loss.
        let mean = fed.evals.filter { $0.domain == "*" }.sorted { $0.round < $1.round }
        #expect(mean.map(\.round) == [1, 2, 3, 4], "evals: \(fed.evals)")
        #expect(mean.allSatisfy { $0.loss.isFinite && abs($0.perplexity - exp($0.loss)) < 1e-6 * $0.perplexity })
        if let first = mean.first, let last = mean.last { #expect(last.loss < first.loss) }
        #expect(Set(fed.evals.filter { $0.domain != "*" }.map(\.domain)) == ["python", "licenses"])
        // The report shows the rounds.
        let report = try Convoy.run(["report", run, "--no-plots"], timeout: 60)
        #expect(report.output.contains("Federated fine-tuning (fedavg)"), "\(report.output)")
    }

    /// Hierarchical: v0–v2 use rsu-1 and v3 rsu-2; each RSU aggregates its vehicles' updates, and
    /// every κ2 = 2 rounds hands its group's model up to edge-1, which averages the two.
    @Test(.timeLimit(.minutes(5)))
    func hierarchicalAggregatesAtTheRSUsAndGloballyEveryKappa2Rounds() async throws {
        let dir = try Self.scenario(rounds: 4, duration: 30, faults: "", scheme: "hierarchical")
        let db = try await Fixture.launchToEnd(dir, timeout: 180)
        let fed = try db.fetchFedTune()
        let global = fed.rounds.filter { $0.level == "global" }
        #expect(global.map(\.round) == [2, 4] && global.allSatisfy { $0.aggregatedAt == "edge-1" && $0.aggregated == 2 }, "rounds: \(fed.rounds)")
        for rsu in ["rsu-1", "rsu-2"] {
            let rounds = fed.rounds.filter { $0.level == "group" && $0.aggregatedAt == rsu }
            #expect(rounds.map(\.round) == [1, 2, 3, 4], "\(rsu): \(rounds)")
        }
        // The vehicles' updates were aggregated at their RSU; the groups' models at edge-1, as real bytes.
        let updates = fed.updates.filter { $0.outcome == .aggregated }
        let byVehicles = updates.filter { Self.clients.contains($0.vehicleID) }
        #expect(byVehicles.count >= 12 && byVehicles.allSatisfy { $0.recordedBy == ($0.vehicleID == "v3" ? "rsu-2" : "rsu-1") })
        let byGroups = updates.filter { $0.vehicleID.hasPrefix("rsu-") }
        #expect(byGroups.count == 4 && byGroups.allSatisfy { $0.recordedBy == "edge-1" && $0.bytes == 8192 && $0.samples > 0 })
        // The backhaul carried the groups' models, not every vehicle's update.
        let stats = try db.fetchLinkStats().filter { $0.kind == "fed_up" }
        let cellBytes = stats.filter { $0.link == "cellular-up" }.reduce(0) { $0 + $1.bytes }
        let backhaulBytes = stats.filter { $0.link == "backhaul" }.reduce(0) { $0 + $1.bytes }
        #expect(backhaulBytes > 4 * 8192 && backhaulBytes < cellBytes / 2, "backhaul \(backhaulBytes) B, cells \(cellBytes) B")
        let mean = fed.evals.filter { $0.domain == "*" }.sorted { $0.round < $1.round }
        #expect(mean.map(\.round) == [2, 4], "evals: \(fed.evals)")
        let report = try Convoy.run(["report", dir.appendingPathComponent("run").path, "--no-plots"], timeout: 60)
        #expect(report.output.contains("RSU groups: 4 group models handed up"), "\(report.output)")
    }

    /// rsu-1 crashes in its group's second round (round 1 closes at about 6 s): its next incarnation
    /// goes on from round 1's model (each group round closes once), and the global rounds still
    /// come every κ2.
    @Test(.timeLimit(.minutes(5)))
    func aRestartedRSUGroupGoesOnFromItsLastRound() async throws {
        let dir = try Self.scenario(rounds: 4, duration: 35, faults: "  - { at: 8, node: rsu-1, mode: crash, for: 3 }\n", scheme: "hierarchical")
        let db = try await Fixture.launchToEnd(dir, timeout: 180)
        let fed = try db.fetchFedTune()
        let global = fed.rounds.filter { $0.level == "global" }
        #expect(global.map(\.round) == [2, 4] && global.allSatisfy { $0.aggregatedAt == "edge-1" }, "rounds: \(fed.rounds)")
        let rsu1 = fed.rounds.filter { $0.level == "group" && $0.aggregatedAt == "rsu-1" }.map(\.round)
        #expect(rsu1 == [1, 2, 3, 4], "rsu-1's rounds: \(rsu1)")  // without its checkpoint it would re-run round 1
        let counters = try db.fetchCounters().filter { $0.nodeID == "rsu-1" }
        #expect(counters.contains { $0.name == "fed_resumed_from_version" && $0.value == 1 }, "\(counters.filter { $0.name.hasPrefix("fed_") })")
    }

    /// FedBuff with a buffer larger than the run fills: every update it accepted is still in the
    /// buffer when the run ends, and is recorded `unapplied` (before, `aggregated` on arrival), once.
    @Test(.timeLimit(.minutes(5)))
    func updatesStillBufferedWhenTheRunEndsAreRecordedUnapplied() async throws {
        let dir = try Self.scenario(rounds: 50, duration: 12, faults: "", scheme: "fedbuff", fedtuneExtra: "  buffer: { size: 50 }")
        let fed = try await Fixture.launchToEnd(dir, timeout: 120).fetchFedTune()
        #expect(fed.rounds.isEmpty && fed.updates.count >= 4, "\(fed.updates.map { "\($0.vehicleID) \($0.outcome)" })")
        #expect(fed.updates.allSatisfy { $0.outcome == .unapplied && $0.bytes == 8192 && $0.uploadEndedAt != nil })
        let uploads = fed.updates.map { "\($0.vehicleID)/\($0.transfer)/\($0.baseVersion)" }
        #expect(Set(uploads).count == uploads.count, "an upload recorded twice: \(uploads)")
        let pending = try String(contentsOfFile: dir.path + "/run/state/edge-1/fedtune-pending.json", encoding: .utf8)
        #expect(pending == "[]")
    }

    @Test(.timeLimit(.minutes(5)))
    func aRestartedAggregatorCarriesOnFromItsLastVersion() async throws {
        // The aggregator (edge-1) crashes after a few rounds and comes back 3 s later.
        let dir = try Self.scenario(rounds: 6, duration: 40, faults: "  - { at: 11, node: edge-1, mode: crash, for: 3 }\n")
        let db = try await Fixture.launchToEnd(dir, timeout: 180)
        let fed = try db.fetchFedTune()
        // Each round closed once: the new incarnation went on from the checkpoint, not from round 1.
        #expect(fed.rounds.map(\.round) == [1, 2, 3, 4, 5, 6], "rounds: \(fed.rounds)")
        let resumed = try db.fetchCounters().filter { $0.nodeID == "edge-1" && $0.name == "fed_resumed_from_version" }
        #expect(resumed.count == 1 && (resumed.first?.value ?? 0) >= 1, "counters: \(resumed)")
        #expect(FileManager.default.fileExists(atPath: dir.path + "/run/state/edge-1/fedtune-checkpoint.json"))
    }

    @Test(.timeLimit(.minutes(5)))
    func theTrainerDyingEndsTheRunWithAReason() async throws {
        let dir = try Self.scenario(rounds: 50, duration: 20, faults: "")
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        try await Fixture.waitUntil("a first round", timeout: 90) {
            try Fixture.reading(run) { try !$0.fetchFedTune().rounds.isEmpty }
        }
        let trainers = Fixture.processes(mentioning: run + "/trainer.json")
        #expect(!trainers.isEmpty)
        for pid in trainers { kill(pid, SIGKILL) }
        let result = try await launch.wait(timeout: 120)
        #expect(result.status != 0)
        #expect(result.output.contains("the trainer killed by signal 9 on its own"), "\(result.output)")
        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        #expect(try db.fetchRequests().allSatisfy { $0.status != nil })
        #expect(try db.metadata()["trainer_ended"]?.contains("killed by signal 9") == true)
    }
}
