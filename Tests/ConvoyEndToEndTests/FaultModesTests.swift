import ConvoyRecording
import Foundation
import Testing

/// Partition and degrade faults, scheduled in a scenario, on the real binary.
@Suite("End to end: partition and degrade", .serialized)
struct FaultModesTests {
    @Test(.timeLimit(.minutes(2)))
    func partitionAndDegradeAreFailedOverAndRecorded() async throws {
        let dir = try Fixture.makeScenario(duration: 12, faults: """
              - { at: 3, node: rsu-1, mode: partition, for: 3 }
              - { at: 7, node: rsu-2, mode: degrade, for: 3, loss: 0.5, latency_ms: 200 }

            """)
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])
        let result = try await launch.wait(timeout: 60)
        #expect(result.status == 0, "\(result.output)")

        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        let faults = try db.fetchFaults()
        #expect(faults.map(\.mode) == ["partition", "degrade"])
        #expect(faults.allSatisfy { $0.endedAt != nil })
        #expect(faults.last?.detail?.contains("loss 0.5, latency 200 ms") == true)

        // A partitioned RSU falls silent: vehicles declare it dead and go elsewhere.
        let dead = try db.fetchDetections().filter { $0.peer == "rsu-1" && $0.state == "dead" && $0.at > 3 && $0.at < 6 }
        #expect(!dead.isEmpty)
        let requests = try db.fetchRequests()
        #expect(requests.allSatisfy { $0.status != nil })
        let duringPartition = requests.filter { $0.status == .completed && $0.createdAt > 3.5 && $0.createdAt < 5.5 }
        #expect(!duringPartition.isEmpty)
        #expect(duringPartition.allSatisfy { $0.servedBy != "rsu-1" && !($0.path ?? "").isEmpty })

        // A degraded RSU loses some of what it sends, its beacons included.
        let counters = try db.fetchCounters().filter { $0.nodeID == "rsu-2" }
        #expect((counters.first { $0.name == "degrade_dropped_broadcast" }?.value ?? 0) > 0)
        #expect(Fixture.processes(mentioning: run).isEmpty)
    }
}
