import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// Hedging, result sharing, on-board compute and the V2V relay, on the real binary.
@Suite("End to end: reasoning paths", .serialized)
struct ReasoningPathsTests {
    func launch(_ dir: URL) async throws -> RunDatabase {
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        let result = try await launch.wait(timeout: 90)
        #expect(result.status == 0, "\(result.output)")
        #expect(Fixture.processes(mentioning: run).isEmpty)
        return try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
    }

    @Test(.timeLimit(.minutes(2)))
    func hedgedRequestsWithSharedResultsSurviveCrashHangAndPartition() async throws {
        let dir = try Fixture.makeScenario(duration: 16, faults: """
              - { at: 3, node: rsu-1, mode: crash, for: 3 }
              - { at: 7, node: edge-1, mode: hang, for: 2 }
              - { at: 10, node: rsu-2, mode: partition, for: 3 }

            """, workload: """
            workload:
              arrival: poisson
              mean_interval: 0.5
              freshness: 5
              tasks:
                - { name: hazard, weight: 2, model: llama-3-8b, input_tokens: 128, output_tokens: 16, deadline: 4, shareable: true }
                - { name: plan, model: llama-2-13b, input_tokens: 64, output_tokens: 8, deadline: 6 }
            """, extra: "policy: hedged")
        let db = try await launch(dir)
        let requests = try db.fetchRequests()
        #expect(requests.count > 40)
        // Every request ends in exactly one terminal state, and nearly all complete.
        #expect(requests.allSatisfy { $0.status != nil })
        let completed = requests.filter { $0.status == .completed }
        #expect(Double(completed.count) >= 0.9 * Double(requests.count), "\(requests.count - completed.count) not completed")
        #expect(Set(requests.compactMap(\.task)) == ["hazard", "plan"])
        // Two attempts in flight at once, the loser cancelled.
        let attempts = try db.fetchAttempts()
        let byRequest = Dictionary(grouping: attempts, by: \.requestID)
        let hedged = byRequest.values.filter { a in a.count >= 2 && a[0].sentAt == a[1].sentAt && a[0].target != a[1].target }
        #expect(hedged.count > requests.count / 2)
        #expect(attempts.contains { $0.outcome == "cancelled" })
        #expect(attempts.allSatisfy { $0.outcome != "pending" })
        let counters = try db.fetchCounters()
        #expect(counters.filter { $0.name == "cancels_applied" || $0.name == "cancels_forwarded" }.reduce(0) { $0 + $1.value } > 0)
        // Shareable results are reused by neighbours: cache hits, with no attempt of their own or
        // with their attempts superseded.
        let hits = completed.filter { $0.cacheHit == true }
        #expect(!hits.isEmpty)
        #expect(hits.allSatisfy { $0.task == "hazard" && $0.path == "v2v-cache" && $0.deadlineMet == true })
        #expect(completed.filter { $0.task == "plan" }.allSatisfy { $0.cacheHit == false })
        for hit in hits {
            #expect((byRequest[hit.requestID] ?? []).allSatisfy { ["superseded", "cancelled"].contains($0.outcome) || $0.outcome == "replied" })
        }
        // Each attempt costs its path's price.
        #expect(completed.filter { $0.cacheHit == false }.allSatisfy { ($0.cost ?? 0) >= 1 })
    }

    @Test(.timeLimit(.minutes(2)))
    func localOnlyComputesOnBoard() async throws {
        let dir = try Fixture.makeScenario(duration: 8, faults: "", workload: """
            workload: { arrival: periodic, mean_interval: 1, model: llama-3-8b, input_tokens: 32, output_tokens: 4, deadline: 3 }
            """, extra: "policy: local-only\nonboard: { device: rtx-4090, slots: 1, queue: 2 }")
        let db = try await launch(dir)
        let completed = try db.fetchRequests().filter { $0.status == .completed }
        #expect(completed.count >= 16)
        #expect(completed.allSatisfy { $0.path == "onboard" && $0.servedBy == $0.vehicleID && ($0.computeMs ?? 0) > 0 })
        #expect(completed.allSatisfy { $0.cost == 0 })
        let attempts = try db.fetchAttempts()
        #expect(attempts.allSatisfy { $0.path == "onboard" })
    }

    @Test(.timeLimit(.minutes(2)))
    func aVehicleWithoutAnRSUInRangeIsRelayedByItsNeighbour() async throws {
        // One RSU covers x ≥ 420: only the fourth vehicle (x 450…) is in range; the third (x 300…)
        // is 150 m behind it, within V2V range; there is no macro cell.
        let map = """
            name: relay
            cloud: { id: cloud, compute: { device: a100-80gb, slots: 8, queue: 64 } }
            edges:
              - { id: edge-1, x: 600, y: 50, rsus: [rsu-1], compute: { device: rtx-4090, slots: 8, queue: 32 } }
            rsus:
              - { id: rsu-1, x: 620, y: 0, radius: 200 }

            """
        let dir = try Fixture.makeScenario(duration: 10, faults: "", map: map)
        let db = try await launch(dir)
        let requests = try db.fetchRequests()
        let relayed = requests.filter { $0.vehicleID == Fixture.vehicles[2] && $0.status == .completed }
        #expect(!relayed.isEmpty)
        #expect(relayed.allSatisfy { $0.path == "v2v>rsu>edge" && $0.servedBy == "edge-1" })
        let direct = requests.filter { $0.vehicleID == Fixture.vehicles[3] && $0.status == .completed }
        #expect(!direct.isEmpty && direct.allSatisfy { $0.path == "rsu>edge" })
        let attempts = try db.fetchAttempts().filter { a in relayed.contains { $0.requestID == a.requestID } }
        #expect(attempts.allSatisfy { $0.path == "v2v" && $0.target == Fixture.vehicles[3] })
        let counters = try db.fetchCounters()
        #expect(counters.contains { $0.nodeID == Fixture.vehicles[3] && $0.name == "v2v_relayed" && $0.value > 0 })
    }
}
