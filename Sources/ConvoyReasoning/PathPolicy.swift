import ConvoyCore
import ConvoyLinks

/// The price of one attempt on each access path (scenario `prices:`), in whatever unit the
/// scenario means (cents, energy); the cost-aware policy minimises it.
public struct PathPrices: Sendable, Equatable, Codable {
    public var onboard = 0.0
    public var v2v = 0.5
    public var rsu = 1.0
    public var macro = 3.0

    public init() {}

    public subscript(path: AccessPath) -> Double {
        get {
            switch path {
            case .onboard: onboard
            case .v2v: v2v
            case .rsu: rsu
            case .macro: macro
            }
        }
        set {
            switch path {
            case .onboard: onboard = newValue
            case .v2v: v2v = newValue
            case .rsu: rsu = newValue
            case .macro: macro = newValue
            }
        }
    }
}

/// What a path policy sees when it ranks the ways a vehicle can reach compute for one request.
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
    /// Seconds left until the request's deadline.
    public var budget: Double
    /// The vehicle's own compute, if it has any.
    public var onboard: OnboardView?
    /// Vehicles heard over V2V recently.
    public var neighbours: [NeighbourView]
    public var v2v: V2VParameters
    /// Expected seconds of compute (plus wired hops) behind a node — an RSU id (its own compute or
    /// its edge's), the cloud — for this request; unknown nodes count 0.
    public var serviceTime: [String: Double]
    /// Expected seconds of compute on a neighbour's on-board device, nil if it cannot run the model.
    public var neighbourComputeTime: Double?
    public var prices: PathPrices

    /// Seconds added per request an RSU advertises as waiting.
    public static let queuePenalty = 0.1

    public init(position: Position, rsus: [RSUView], macro: MacroView?, cellular: CellularParameters,
                macroCellular: CellularParameters = CellularParameters(bandwidthHz: 10e6), wanLatency: Double = 0.03,
                payloadBytes: Int = 20_000, budget: Double = 5, onboard: OnboardView? = nil, neighbours: [NeighbourView] = [],
                v2v: V2VParameters = V2VParameters(), serviceTime: [String: Double] = [:], neighbourComputeTime: Double? = nil,
                prices: PathPrices = PathPrices()) {
        self.position = position
        self.rsus = rsus
        self.macro = macro
        self.cellular = cellular
        self.macroCellular = macroCellular
        self.wanLatency = wanLatency
        self.payloadBytes = payloadBytes
        self.budget = budget
        self.onboard = onboard
        self.neighbours = neighbours
        self.v2v = v2v
        self.serviceTime = serviceTime
        self.neighbourComputeTime = neighbourComputeTime
        self.prices = prices
    }

    private var bits: Double { Double(payloadBytes) * 8 }

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

    /// The on-board route, if the vehicle has compute that would take the request now.
    public var onboardRoute: Route? {
        guard let onboard, onboard.finishIn != nil else { return nil }
        return Route(.onboard, onboard.id)
    }

    /// Neighbours in V2V range that could help — compute on board, or relay to their RSU — with the
    /// V2V rate to them; best rate first.
    public var usableNeighbours: [(neighbour: NeighbourView, distance: Double, rate: Double)] {
        neighbours.compactMap { n in
            let distance = n.position.distance(to: position)
            guard distance <= v2v.rangeM, n.canCompute && neighbourComputeTime != nil || n.uplinkRate > 0,
                  let rate = V2VBudget.rateBitsPerSecond(snrDB: V2VBudget.snrDB(distance: distance, parameters: v2v),
                                                         bandwidthHz: v2v.bandwidthHz) else { return nil }
            return (n, distance, rate)
        }.sorted { ($0.rate, $1.neighbour.id) > ($1.rate, $0.neighbour.id) }
    }

    /// Every route the vehicle could use now, in no particular order.
    public var allRoutes: [Route] {
        usableRSUs.map { Route(.rsu, $0.rsu.id) } + [macroRoute, onboardRoute].compactMap { $0 }
            + usableNeighbours.map { Route(.v2v, $0.neighbour.id) }
    }

    /// Expected seconds from sending on `route` to the answer (upload at the rate the vehicle
    /// would get in a cell shared with the vehicles its owner advertises, advertised queues,
    /// compute behind the route); nil if the route is unusable.
    public func expectedLatency(_ route: Route) -> Double? {
        switch route.path {
        case .rsu:
            guard let u = usableRSUs.first(where: { $0.rsu.id == route.target }) else { return nil }
            return bits / u.rate + Self.queuePenalty * Double(u.rsu.queued) + (serviceTime[route.target] ?? 0)
        case .macro:
            guard let macro, macroRoute != nil else { return nil }
            let rate = CellularBudget.rateBitsPerSecond(distance: macro.position.distance(to: position), parameters: macroCellular,
                                                        share: 1 / Double(macro.activeVehicles + 1))
            guard rate > 0 else { return nil }
            return bits / rate + wanLatency + Self.queuePenalty * Double(macro.queued) + (serviceTime[route.target] ?? 0)
        case .onboard:
            return onboard?.finishIn
        case .v2v:
            guard let u = usableNeighbours.first(where: { $0.neighbour.id == route.target }) else { return nil }
            if u.neighbour.canCompute, let compute = neighbourComputeTime { return bits / u.rate + compute }
            // Which RSU the neighbour relays to is unknown: count the slowest.
            let relayed = serviceTime.values.max() ?? 0
            return bits / u.rate + bits / u.neighbour.uplinkRate + relayed
        }
    }

    /// Routes sorted by expected latency (ties by target), unusable ones left out.
    public var byExpectedLatency: [Route] {
        allRoutes.compactMap { r in expectedLatency(r).map { (r, $0) } }
            .sorted { ($0.1, $0.0.target) < ($1.1, $1.0.target) }.map(\.0)
    }

    /// The macro cell if in range; then, when no RSU is in range, the neighbours (ordered by
    /// `neighbours`): the fallbacks of the RSU-first policies.
    func fallbacks(neighbours: [(neighbour: NeighbourView, distance: Double, rate: Double)]) -> [Route] {
        (macroRoute.map { [$0] } ?? []) + (usableRSUs.isEmpty ? neighbours.map { Route(.v2v, $0.neighbour.id) } : [])
    }
}

/// Ranks the access paths for a request, best first; the failover ledger walks down the list.
/// Adding a policy is one new type, plus its entry in `PathPolicies.all`.
public protocol PathPolicy: Sendable {
    /// The name a scenario uses (`policy:`).
    var name: String { get }
    /// How many attempts a request keeps in flight at once (2: hedged).
    var width: Int { get }
    func rank(_ context: PathContext) -> [Route]
}

extension PathPolicy {
    public var width: Int { 1 }
}

/// The policies a scenario can choose.
public enum PathPolicies {
    public static let all: [any PathPolicy] = [
        BestRatePolicy(), NearestRSUPolicy(), LeastExpectedLatencyPolicy(), CostAwarePolicy(), HedgedPolicy(), LocalOnlyPolicy(),
        CloudOnlyPolicy(),
    ]
    public static let defaultName = BestRatePolicy().name

    public static func named(_ name: String) -> (any PathPolicy)? {
        all.first { $0.name == name }
    }

    public static var names: [String] { all.map(\.name) }
}

/// The RSU in range where the vehicle would get the highest cellular rate (then the shortest
/// advertised queue), then the cloud over the macro cell; with no RSU in range, also neighbours
/// over V2V (best V2V rate first) after the macro cell. The default.
public struct BestRatePolicy: PathPolicy {
    public let name = "best-rate"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let ranked = c.usableRSUs.sorted { a, b in
            if a.rate != b.rate { return a.rate > b.rate }
            if a.rsu.queued != b.rsu.queued { return a.rsu.queued < b.rsu.queued }
            return a.rsu.id < b.rsu.id
        }
        return ranked.map { Route(.rsu, $0.rsu.id) } + c.fallbacks(neighbours: c.usableNeighbours)
    }
}

/// The nearest alive RSU in range, then the next nearest…, then the macro cell; with no RSU in
/// range, also the neighbours over V2V, nearest first.
public struct NearestRSUPolicy: PathPolicy {
    public let name = "nearest-rsu"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let ranked = c.usableRSUs.sorted { ($0.distance, $0.rsu.id) < ($1.distance, $1.rsu.id) }
        let nearest = c.usableNeighbours.sorted { ($0.distance, $0.neighbour.id) < ($1.distance, $1.neighbour.id) }
        return ranked.map { Route(.rsu, $0.rsu.id) } + c.fallbacks(neighbours: nearest)
    }
}

/// Every path — RSUs, the macro cell, on-board compute, neighbours — ranked by the expected time
/// to the answer (`PathContext.expectedLatency`): upload, advertised queue, compute behind it.
public struct LeastExpectedLatencyPolicy: PathPolicy {
    public let name = "least-expected-latency"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] { c.byExpectedLatency }
}

/// The cheapest path expected to answer within `slack` of the time left to the deadline (ties:
/// the faster); then, should those fail, the rest by expected latency.
public struct CostAwarePolicy: PathPolicy {
    public let name = "cost-aware"
    /// Share of the remaining budget a path may be expected to use.
    public var slack = 0.8
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        let scored = c.allRoutes.compactMap { r in c.expectedLatency(r).map { (route: r, latency: $0, price: c.prices[r.path]) } }
        let inTime = scored.filter { $0.latency <= slack * c.budget }
            .sorted { ($0.price, $0.latency, $0.route.target) < ($1.price, $1.latency, $1.route.target) }
        let late = scored.filter { $0.latency > slack * c.budget }
            .sorted { ($0.latency, $0.route.target) < ($1.latency, $1.route.target) }
        return (inTime + late).map(\.route)
    }
}

/// Sends each request on the two paths with the least expected latency at once, keeps the first
/// answer and cancels the other; a failed attempt is replaced by the next path.
public struct HedgedPolicy: PathPolicy {
    public let name = "hedged"
    public let width = 2
    public init() {}

    public func rank(_ c: PathContext) -> [Route] { c.byExpectedLatency }
}

/// Only the vehicle's own compute (a baseline: no network at all).
public struct LocalOnlyPolicy: PathPolicy {
    public let name = "local-only"
    public init() {}

    public func rank(_ c: PathContext) -> [Route] {
        c.onboard.map { [Route(.onboard, $0.id)] } ?? []
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
