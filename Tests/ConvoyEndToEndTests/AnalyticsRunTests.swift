import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// Federated analytics on the real binary: every vehicle's answer crosses its cell and the
/// backhaul to the aggregator, through an RSU crash, and the estimate equals the trace's truth.
@Suite("End to end: federated analytics", .serialized)
struct AnalyticsRunTests {
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
}
