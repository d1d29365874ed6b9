import ConvoyCore
import ConvoyLinks

/// What a path policy sees when it ranks the ways a vehicle can reach compute.
public struct PathContext: Sendable {
    public var position: Position
    /// Every RSU of the map as the vehicle knows it (alive or not, in range or not): policies filter.
    public var rsus: [RSUView]
    public var macro: MacroView?
    /// Map-wide cell parameters (an RSU's own, if any, are in its view).
    public var cellular: CellularParameters
    public var macroCellular: CellularParameters
    /// One-way WAN latency between the macro cell and the cloud, seconds.
    public var wanLatency: Double
    /// Bytes a request carries up the access link.
    public var payloadBytes: Int

    public init(position: Position, rsus: [RSUView], macro: MacroView?, cellular: CellularParameters,
                macroCellular: CellularParameters = CellularParameters(bandwidthHz: 10e6), wanLatency: Double = 0.03,
                payloadBytes: Int = 20_000) {
        self.position = position
        self.rsus = rsus
        self.macro = macro
        self.cellular = cellular
        self.macroCellular = macroCellular
        self.wanLatency = wanLatency
        self.payloadBytes = payloadBytes
    }

    /// Alive RSUs whose cell reaches the vehicle, with the rate it would get there (sharing the
    /// band with the vehicles the RSU advertises).
    public var usableRSUs: [(rsu: RSUView, distance: Double, rate: Double)] {
        rsus.compactMap { rsu in
            let distance = rsu.position.distance(to: position)
            guard rsu.alive, distance <= rsu.radius else { return nil }
            let rate = CellularBudget.rateBitsPerSecond(distance: distance, parameters: rsu.cellular ?? cellular,
                                                        share: 1 / Double(rsu.activeVehicles + 1))
            return rate > 0 ? (rsu, distance, rate) : nil
        }
    }

    /// The route to the cloud over the macro cell, if the vehicle is in its coverage.
    public var macroRoute: Route? {
        guard let macro, macro.position.distance(to: position) <= macro.radius else { return nil }
        return Route(.macro, macro.target)
    }
}

/// Ranks the access paths for a request, best first; the failover ledger walks down the list.
/// Adding a policy is one new type, plus its entry in `PathPolicies.all`.
public protocol PathPolicy: Sendable {
    /// The name a scenario uses (`policy:`).
    var name: String { get }
    func rank(_ context: PathContext) -> [Route]
}

/// The policies a scenario can choose.
public enum PathPolicies {
    public static let all: [any PathPolicy] = [BestRatePolicy(), NearestRSUPolicy(), LeastExpectedLatencyPolicy(), CloudOnlyPolicy()]
    public static let defaultName = BestRatePolicy().name

    public static func named(_ name: String) -> (any PathPolicy)? {
        all.first { $0.name == name }
    }

    public static var names: [String] { all.map(\.name) }
}

/// The RSU in range where the vehicle would get the highest cellular rate (then the shortest
/// advertised queue), then the cloud over the macro cell. The default.
public struct BestRatePolicy: PathPolicy {
    public let name = "best-rate"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let ranked = c.usableRSUs.sorted { a, b in
            if a.rate != b.rate { return a.rate > b.rate }
            if a.rsu.queued != b.rsu.queued { return a.rsu.queued < b.rsu.queued }
            return a.rsu.id < b.rsu.id
        }
        return ranked.map { Route(.rsu, $0.rsu.id) } + (c.macroRoute.map { [$0] } ?? [])
    }
}

/// The nearest alive RSU in range, then the next nearest…, then the macro cell.
public struct NearestRSUPolicy: PathPolicy {
    public let name = "nearest-rsu"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let ranked = c.usableRSUs.sorted { ($0.distance, $0.rsu.id) < ($1.distance, $1.rsu.id) }
        return ranked.map { Route(.rsu, $0.rsu.id) } + (c.macroRoute.map { [$0] } ?? [])
    }
}

/// Every path ranked by an estimate of the time to get the request to compute: the upload at
/// the rate the vehicle would get (shared with the vehicles an RSU advertises), plus
/// `queuePenalty` per request the RSU says is waiting, or, over the macro cell, the WAN latency
/// to the cloud. So a far, slow RSU can rank below the macro cell.
public struct LeastExpectedLatencyPolicy: PathPolicy {
    public let name = "least-expected-latency"
    /// Seconds added per request an RSU advertises as waiting.
    public var queuePenalty = 0.1
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let bits = Double(c.payloadBytes) * 8
        var scored = c.usableRSUs.map { (Route(.rsu, $0.rsu.id), bits / $0.rate + queuePenalty * Double($0.rsu.queued)) }
        if let route = c.macroRoute, let macro = c.macro {
            let rate = CellularBudget.rateBitsPerSecond(distance: macro.position.distance(to: c.position), parameters: c.macroCellular)
            if rate > 0 { scored.append((route, bits / rate + c.wanLatency)) }
        }
        return scored.sorted { ($0.1, $0.0.target) < ($1.1, $1.0.target) }.map(\.0)
    }
}

/// Only the cloud over the macro cell (a baseline: no edge at all).
public struct CloudOnlyPolicy: PathPolicy {
    public let name = "cloud-only"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        c.macroRoute.map { [$0] } ?? []
    }
}
