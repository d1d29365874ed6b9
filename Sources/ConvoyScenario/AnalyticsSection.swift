import ConvoyCore
import ConvoyReasoning

/// The scenario's `analytics:` section (README, "Federated analytics").
extension AnalyticsConfig {
    static func parse(_ f: inout YAMLFields, map: MapSpec, duration: Double?) throws -> AnalyticsConfig {
        let aggregator = try f.string("aggregator")
        guard let role = map.role(of: aggregator), role.isServer else {
            throw f.error("aggregator", "'\(aggregator)' is not an RSU, edge server or the cloud of the map \(map.name)")
        }
        let from = try f.double("from", default: 0, min: 0)
        guard let until = try f.optionalDouble("until", above: from) ?? duration else {
            throw f.error("until", "missing: give the end of the window (the scenario has no duration)")
        }
        guard until > from else { throw f.error("until", "expected a time after from (\(from)), got \(until)") }
        let query = RoadCellQuery(cellSize: try f.double("cell_size", default: 200, above: 0), window: from..<until,
                                  step: try f.double("step", default: 1, above: 0), maxSpeed: try f.double("max_speed", default: 70, above: 0))
        let epsilon = try f.optionalDouble("epsilon", above: 0)
        let grace = try f.double("grace", default: 5, min: 0)
        try f.rejectUnknownKeys()
        return AnalyticsConfig(query: query, aggregator: aggregator, epsilon: epsilon, grace: grace)
    }
}
