import ConvoyCore
import ConvoyScenario

/// How well a map's RSUs cover a trace (`convoy map coverage`): fed one sample at a time, so any
/// trace source works.
///
/// A sample is covered by an RSU when it lies within the RSU's radius (distance ≤ radius).
public struct CoverageCounter: Sendable {
    public struct RSUFigures: Sendable, Equatable, Codable {
        public var id: String
        /// Samples within the radius.
        public var samples: Int
        /// Distinct vehicles with at least one sample within the radius.
        public var vehicles: Int
    }

    public struct Report: Sendable, Equatable, Codable {
        public var samples: Int
        /// Samples within at least one RSU's radius.
        public var coveredSamples: Int
        /// `coveredSamples / samples` (0 for no samples).
        public var coveredShare: Double
        public var vehicles: Int
        /// Vehicles with at least one covered sample.
        public var coveredVehicles: Int
        /// In map order.
        public var rsus: [RSUFigures]

        enum CodingKeys: String, CodingKey {
            case samples, coveredSamples = "covered_samples", coveredShare = "covered_share", vehicles
            case coveredVehicles = "covered_vehicles", rsus
        }

        public var text: String {
            var lines = [
                "samples covered:  \(coveredSamples) of \(samples) (\(percent(coveredShare)))",
                "vehicles covered: \(coveredVehicles) of \(vehicles) (at least one sample in range)",
                "per RSU:          samples  vehicles",
            ]
            let width = max(8, rsus.map(\.id.count).max() ?? 0)
            for rsu in rsus {
                lines.append("  " + rsu.id.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(repeating: " ", count: max(1, 15 - width)) + pad(rsu.samples, 7) + "  " + pad(rsu.vehicles, 8))
            }
            return lines.joined(separator: "\n")
        }

        private func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: " ", count: max(0, width - s.count)) + s
        }

        private func percent(_ share: Double) -> String {
            let tenths = (share * 1000).rounded() / 10
            return "\(tenths) %"
        }
    }

    private let map: MapSpec
    /// RSU indices by grid cell (cell side = the largest radius).
    private let cell: Double
    private var grid: [GridKey: [Int]] = [:]
    private var samples = 0
    private var covered = 0
    private var rsuSamples: [Int]
    private var rsuVehicles: [Set<String>]
    private var vehicles: Set<String> = []
    private var coveredVehicles: Set<String> = []

    private struct GridKey: Hashable, Sendable {
        var x: Int
        var y: Int
    }

    public init(map: MapSpec) {
        self.map = map
        cell = max(1, map.rsus.map(\.radius).max() ?? 1)
        rsuSamples = Array(repeating: 0, count: map.rsus.count)
        rsuVehicles = Array(repeating: [], count: map.rsus.count)
        for (index, rsu) in map.rsus.enumerated() {
            grid[key(rsu.position), default: []].append(index)
        }
    }

    private func key(_ p: Position) -> GridKey {
        GridKey(x: Int((p.x / cell).rounded(.down)), y: Int((p.y / cell).rounded(.down)))
    }

    /// Counts one sample of `vehicle` at `position`.
    public mutating func add(vehicle: String, position: Position) {
        samples += 1
        vehicles.insert(vehicle)
        let k = key(position)
        var hit = false
        for dx in -1...1 {
            for dy in -1...1 {
                for index in grid[GridKey(x: k.x + dx, y: k.y + dy)] ?? [] {
                    let rsu = map.rsus[index]
                    guard rsu.position.distance(to: position) <= rsu.radius else { continue }
                    hit = true
                    rsuSamples[index] += 1
                    rsuVehicles[index].insert(vehicle)
                }
            }
        }
        if hit {
            covered += 1
            coveredVehicles.insert(vehicle)
        }
    }

    public var report: Report {
        Report(
            samples: samples, coveredSamples: covered, coveredShare: samples > 0 ? Double(covered) / Double(samples) : 0,
            vehicles: vehicles.count, coveredVehicles: coveredVehicles.count,
            rsus: map.rsus.indices.map { RSUFigures(id: map.rsus[$0].id, samples: rsuSamples[$0], vehicles: rsuVehicles[$0].count) })
    }
}
