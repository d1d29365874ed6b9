import ConvoyCore
import ConvoyReasoning
import ConvoyWire

/// Federated analytics at a vehicle: its answer to the scenario's road-cell query, computed from
/// its own trajectory (the positions and speeds never leave it), sent to the best RSU in range (or
/// over the macro cell to a cloud aggregator) at
/// the window's end (or 2 s before it leaves the trace) and re-sent every 0.5 s until the
/// aggregator's receipt comes back.
extension VehicleCore {
    struct AnalyticsParticipation {
        var nextTry: Double
        var acked = false
    }

    /// Seconds between re-sends of an answer without a receipt.
    static let analyticsRetry = 0.5

    mutating func analyticsTick(now: Double) {
        guard let config = scenario.analytics, var state = analyticsState, !state.acked, now >= state.nextTry else { return }
        defer { analyticsState = state }
        // Its serving RSU; else the macro cell, when the aggregator is the cloud it leads to.
        let here = position(at: now)
        let macro = map.macro.flatMap { here.distance(to: $0.position) <= $0.radius && config.aggregator == map.cloud.id ? map.cloud.id : nil }
        guard let target = servingRSU(now: now) ?? macro else {
            state.nextTry = now + Self.analyticsRetry
            return out.count("analytics_waiting_for_coverage")
        }
        let answer = config.query.localAnswer(position: { trajectory.position(at: $0) }, speed: { trajectory.speed(at: $0) ?? 0 })
        let cells = answer.keys.sorted().map { cell in
            AnalyticsReport.Cell(x: Int32(clamping: cell.x), y: Int32(clamping: cell.y), meanSpeed: answer[cell]!.speedSum)
        }
        out.send(Outbound(AnalyticsReport(vehicleID: id, cells: cells), on: .access(node: target), position: here))
        out.count("analytics_answers_sent")
        state.nextTry = now + Self.analyticsRetry
    }

    /// The aggregator's receipt.
    mutating func analyticsAcknowledged(_ ack: AnalyticsAck) {
        guard ack.vehicleID == id, analyticsState?.acked == false else { return }
        analyticsState?.acked = true
        out.count("analytics_acked")
    }

    /// When the vehicle must wake to send (or re-send) its answer.
    var analyticsWake: Double {
        guard let state = analyticsState, !state.acked else { return .infinity }
        return state.nextTry
    }
}
