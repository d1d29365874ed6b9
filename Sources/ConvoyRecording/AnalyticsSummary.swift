import ConvoyReasoning
import ConvoyWire

/// Federated analytics in a run: the aggregator's estimate against the trace's ground truth, and
/// what the answers cost on the links.
public struct AnalyticsSummary: Sendable, Equatable {
    public var estimateCells: Int
    public var truthCells: Int
    /// Vehicles whose answers the estimate sums, of the vehicles on the road in the window.
    public var contributors: Int
    public var vehicles: Int
    public var epsilon: Double?
    /// Mean absolute error per true cell: of the vehicle count, and of the mean speed (m/s).
    public var countError: Double
    public var speedError: Double?
    /// Bytes of answers over the cells' uplinks, answers sent (with re-sends) and acknowledged.
    public var bytesUp: Int
    public var answersSent: Int
    public var answersAcked: Int

    /// Nil when the run has no analytics rows.
    public init?(cells: [AnalyticsCellRecord], counters: [CounterRecord]) {
        let estimate = cells.filter { $0.source == AnalyticsCellRecord.estimate }
        let truth = cells.filter { $0.source == AnalyticsCellRecord.truth }
        guard !estimate.isEmpty || !truth.isEmpty else { return nil }
        func tallies(_ rows: [AnalyticsCellRecord]) -> [RoadCellQuery.Cell: RoadCellQuery.Tally] {
            Dictionary(rows.map { row in
                (RoadCellQuery.Cell(x: row.cellX, y: row.cellY),
                 RoadCellQuery.Tally(vehicles: row.vehicles, speedSum: (row.meanSpeed ?? 0) * row.vehicles))
            }, uniquingKeysWith: { first, _ in first })
        }
        let error = RoadCellQuery.error(of: tallies(estimate), against: tallies(truth))
        estimateCells = estimate.count
        truthCells = truth.count
        contributors = estimate.first?.contributors ?? 0
        vehicles = truth.first?.contributors ?? 0
        epsilon = estimate.first?.epsilon
        countError = error.count
        speedError = error.speed
        func total(_ name: String) -> Int { counters.filter { $0.name == name }.reduce(0) { $0 + $1.value } }
        bytesUp = total("analytics_up_bytes_from_vehicles")
        answersSent = total("analytics_answers_sent")
        answersAcked = total("analytics_acked")
    }

    func text() -> String {
        var out = "\nFederated analytics (vehicles and mean speed per road cell, from each vehicle's own trajectory)\n"
        out += "  answers: \(contributors) of \(vehicles) vehicles on the road in the window; \(answersSent) sent (with re-sends), "
            + "\(answersAcked) acknowledged; \(bytesUp) bytes over the cells' uplinks\n"
        out += "  cells: \(estimateCells) estimated, \(truthCells) in the ground truth; "
            + (epsilon.map { "Laplace noise, ε = \($0)" } ?? "no noise") + "\n"
        out += "  error per true cell: vehicles " + String(format: "%.3f", countError) + ", mean speed "
            + (speedError.map { String(format: "%.3f m/s", $0) } ?? "-") + "\n"
        return out
    }
}
