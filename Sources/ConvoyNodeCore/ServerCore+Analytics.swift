import ConvoyCore
import ConvoyReasoning
import ConvoyWire

/// Federated analytics at a server: the aggregator sums the vehicles' answers and records its
/// estimate when it is due; every other hop relays the answers up and the receipts back.
extension ServerCore {
    /// An answer arrived (after this node's access link, if it owns it): counted here, or sent on
    /// towards the aggregator. The way back to its vehicle is remembered for the receipt.
    mutating func analyticsArrived(_ report: AnalyticsReport, from client: Client, now: Double) {
        wayBack[report.vehicleID] = client
        guard var aggregator = analytics else {
            guard upstream != nil else { return out.count("analytics_without_aggregator") }
            var next = report
            next.route.append(id)
            return transmitUpstream(next, virtualBytes: 0, now: now)
        }
        let answer = Dictionary(report.cells.map { cell in
            (RoadCellQuery.Cell(x: Int(cell.x), y: Int(cell.y)), RoadCellQuery.Tally(vehicles: 1, speedSum: cell.meanSpeed))
        }, uniquingKeysWith: { first, _ in first })
        switch aggregator.receive(vehicle: report.vehicleID, answer: answer) {
        case .added: out.count("analytics_answers")
        case .duplicate: out.count("analytics_answers_duplicate")
        case .late: out.count("analytics_answers_late")
        }
        analytics = aggregator
        sendBack(AnalyticsAck(vehicleID: report.vehicleID), virtualBytes: 0, to: client, now: now)
    }

    /// Records the estimate, one row per road cell (noised if the scenario gives ε).
    mutating func recordEstimate(now: Double) {
        guard var aggregator = analytics, !aggregator.recorded else { return }
        let estimate = aggregator.estimate(rng: &analyticsNoise)
        analytics = aggregator
        for cell in estimate.keys.sorted() {
            let tally = estimate[cell]!
            out.record(.analyticsCell(AnalyticsCellRecord(source: AnalyticsCellRecord.estimate, cellX: cell.x, cellY: cell.y,
                                                          vehicles: tally.vehicles, meanSpeed: tally.meanSpeed,
                                                          contributors: aggregator.answers.count, epsilon: aggregator.config.epsilon,
                                                          at: now, recordedBy: id)))
        }
        out.append(.flushRecords)
    }
}
