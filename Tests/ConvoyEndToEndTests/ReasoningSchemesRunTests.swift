import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// The collaborative reasoning schemes on the real binary, each through an RSU crash: split
/// inference (the activations on the links, failover from the kept stage output), federated
/// analytics (the estimate equals the trace's truth), expert models and a model split across
/// vehicles over V2V. One suite, run one test at a time: each runs a fleet.
@Suite("End to end: reasoning schemes", .serialized)
struct ReasoningSchemesRunTests {
    @Test(.timeLimit(.minutes(2)))
    func splitRequestsFailOverThroughAnRSUCrashWithoutLosingOne() async throws {
        let (db, requests, attempts) = try await run(
            task: "{ name: split6, model: smollm2-135m, input_tokens: 16, output_tokens: 400, deadline: 4, payload_bytes: 2000, split: 6 }",
            interval: 0.5, crashAt: 4)
        // Split at 6 of SmolLM2's 30 layers: 16 tokens × 576 × 2 B of activations + 6/30 of 16 × 23 040 B of KV cache.
        let completed = requests.filter { $0.status == .completed }
        let split = completed.filter { $0.splitK == 6 }
        #expect(split.count >= completed.count * 9 / 10)
        #expect(split.allSatisfy { $0.splitBytes == 92_160 && $0.payloadBytes == 92_160 && ($0.lowerStageMs ?? 0) > 0 })
        #expect(split.allSatisfy { $0.path?.hasPrefix("rsu") == true || $0.path == "macro" })
        // The crash sent some of them to a second server with the stage output kept on board.
        let failedOver = Set(attempts.filter { $0.attempt >= 2 }.map(\.requestID))
        #expect(split.contains { failedOver.contains($0.requestID) })
        let report = RunReport(snapshot: try db.snapshot()).text(title: "split")
        #expect(report.contains("Split inference, by task and split point"))
    }

    @Test(.timeLimit(.minutes(2)))
    func theEstimateMatchesTheGroundTruthThroughAnRSUCrash() async throws {
        let dir = try Fixture.makeScenario(duration: 14, faults: """
              - { at: 6, node: rsu-1, mode: crash, for: 5 }

            """, extra: """
            analytics: { aggregator: edge-1, from: 0, until: 7, cell_size: 100, grace: 3 }
            """)
        let db = try await Fixture.launchToEnd(dir)
        let snapshot = try db.snapshot()
        let summary = try #require(AnalyticsSummary(cells: snapshot.analyticsCells, counters: snapshot.counters))
        #expect(summary.vehicles == Fixture.vehicles.count && summary.contributors == summary.vehicles)
        #expect(summary.estimateCells == summary.truthCells && summary.truthCells > 0)
        #expect(summary.countError == 0 && summary.speedError == 0)
        #expect(summary.answersAcked == summary.vehicles && summary.bytesUp > 0)
        #expect(RunReport(snapshot: snapshot).text(title: "analytics").contains("Federated analytics"))
        // Nobody answered from outside the run, and the raw trajectory never left: only cell tallies did.
        #expect(snapshot.analyticsCells.allSatisfy { $0.source == "truth" ? $0.recordedBy == "launcher" : $0.recordedBy == "edge-1" })
    }

    /// Runs one task (every vehicle with an Orin on board) through a 4 s crash of rsu-1 and checks
    /// that every request ended in one terminal state and nearly all completed. `dense`: five
    /// vehicles 60 m apart driving together (chains of neighbours within range of each other).
    func run(task: String, extra: String = "", interval: Double = 0.8, crashAt: Double = 5,
             dense: Bool = false) async throws -> (db: RunDatabase, requests: [RequestRecord], attempts: [AttemptRecord]) {
        let dir = try Fixture.makeScenario(duration: 14, faults: """
              - { at: \(crashAt), node: rsu-1, mode: crash, for: 4 }

            """, workload: """
            workload:
              arrival: periodic
              mean_interval: \(interval)
              tasks:
                - \(task)
            """, extra: "onboard: { device: jetson-agx-orin, slots: 2, queue: 4 }\n" + extra)
        if dense {
            var trace = "time,id,x,y,speed,angle\n"
            for t in 0...20 { for i in 0..<5 { trace += "\(t),p\(i),\(100 + 60 * i + 2 * t),0,2,90\n" } }
            try trace.write(to: dir.appendingPathComponent("trace.csv"), atomically: true, encoding: .utf8)
        }
        let db = try await Fixture.launchToEnd(dir)
        let requests = try db.fetchRequests(), attempts = try db.fetchAttempts()
        #expect(requests.count > 40)
        #expect(requests.allSatisfy { $0.status != nil }, "every request ends in a terminal state")
        #expect(attempts.allSatisfy { $0.outcome != "pending" })
        let completed = requests.filter { $0.status == .completed }
        #expect(Double(completed.count) >= 0.85 * Double(requests.count), "\(requests.count - completed.count) not completed")
        return (db, requests, attempts)
    }

    @Test(.timeLimit(.minutes(2)))
    func expertSubtasksGoToHoldersOverV2V() async throws {
        let (_, requests, attempts) = try await run(
            task: "{ name: report, model: smollm2-135m, input_tokens: 64, output_tokens: 8, deadline: 4, subtasks: [vision, traffic] }",
            extra: """
            experts:
              - { name: vision, model: smollm2-135m, share: 1.0 }
              - { name: traffic, model: llama-3-8b-q4, share: 0.5 }
            """)
        // Subtasks are attempts of their parent: no row under a subtask's id.
        #expect(!requests.contains { $0.requestID.contains(".") })
        #expect(requests.filter { $0.status == .completed }.allSatisfy { $0.path == "experts" })
        #expect(attempts.contains { $0.path == "v2v" && $0.detail?.hasPrefix("expert vision") == true && $0.outcome == "replied" })
        let experts = Set(attempts.compactMap { attempt in attempt.detail.map { String($0.prefix { $0 != ":" }) } })
        #expect(experts.isSuperset(of: ["expert vision", "expert traffic"]))
    }

    @Test(.timeLimit(.minutes(2)))
    func aModelSplitAcrossTwoNeighboursAnswersOverV2V() async throws {
        let (_, requests, attempts) = try await run(
            task: "{ name: advice, model: smollm2-135m, input_tokens: 64, output_tokens: 8, deadline: 4, pipeline: 2 }", dense: true)
        let chained = requests.filter { $0.status == .completed && $0.path == "v2v>v2v" }
        #expect(!chained.isEmpty)
        #expect(attempts.contains { $0.detail?.hasPrefix("pipeline ") == true && $0.outcome == "replied" })
    }
}
