import ConvoyMobility
import ConvoyReasoning
import ConvoyRecording
import ConvoyWire

extension Launcher {
    /// Records the federated analytics query's ground truth from every vehicle's whole trajectory
    /// (what the aggregator's estimate is judged against in `convoy report`).
    static func recordAnalyticsTruth(_ analytics: AnalyticsConfig, vehicles: [VehiclePlan], in database: RunDatabase) throws {
        let trajectories = try vehicles.map { try TrajectoryFile.read(path: $0.trajectoryPath) }
        let truth = analytics.truth(of: trajectories.map { t in (position: { t.position(at: $0) }, speed: { t.speed(at: $0) ?? 0 }) })
        let rows = truth.cells.keys.sorted().map { cell in
            AnalyticsCellRecord(source: AnalyticsCellRecord.truth, cellX: cell.x, cellY: cell.y, vehicles: truth.cells[cell]!.vehicles,
                                meanSpeed: truth.cells[cell]!.meanSpeed, contributors: truth.vehicles, epsilon: nil, at: 0,
                                recordedBy: "launcher")
        }
        try database.apply([RecordBatch(analyticsCells: rows)])
    }
}
