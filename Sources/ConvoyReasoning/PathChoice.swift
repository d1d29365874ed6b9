import ConvoyCore
import ConvoyLinks

/// What a vehicle knows of an RSU when it chooses a path.
public struct RSUView: Sendable, Equatable {
    public var id: String
    public var position: Position
    public var radius: Double
    /// Heard recently (liveness says alive).
    public var alive: Bool
    /// Vehicles active in its cell, from its last beacon.
    public var activeVehicles: Int
    /// Requests waiting at it, from its last beacon.
    public var queued: Int
    /// Its cell's parameters when they differ from the map-wide ones.
    public var cellular: CellularParameters?

    public init(id: String, position: Position, radius: Double, alive: Bool, activeVehicles: Int = 0, queued: Int = 0,
                cellular: CellularParameters? = nil) {
        self.id = id
        self.position = position
        self.radius = radius
        self.alive = alive
        self.activeVehicles = activeVehicles
        self.queued = queued
        self.cellular = cellular
    }
}

/// The macro cell as a vehicle sees it.
public struct MacroView: Sendable, Equatable {
    public var position: Position
    public var radius: Double
    /// The node the macro cell leads to (the cloud).
    public var target: String

    public init(position: Position, radius: Double, target: String) {
        self.position = position
        self.radius = radius
        self.target = target
    }
}

/// First-cut path policy: the alive RSUs in range, best first, then the cloud over the macro cell.
///
/// RSUs are ranked by the cellular rate a new vehicle would get there: Shannon rate at the distance,
/// shared with the vehicles the RSU says are active (its beacon), then by queue, then by id.
public enum PathChoice {
    public static func candidates(at position: Position, rsus: [RSUView], macro: MacroView?,
                                  cellular: CellularParameters) -> [Route] {
        let usable = rsus.filter { $0.alive && $0.position.distance(to: position) <= $0.radius }
            .filter { CellularBudget.rateBitsPerSecond(distance: $0.position.distance(to: position), parameters: $0.cellular ?? cellular) > 0 }
        let ranked = usable.map { rsu -> (RSUView, Double) in
            let rate = CellularBudget.rateBitsPerSecond(distance: rsu.position.distance(to: position), parameters: rsu.cellular ?? cellular,
                                                        share: 1 / Double(rsu.activeVehicles + 1))
            return (rsu, rate)
        }.sorted { a, b in
            if a.1 != b.1 { return a.1 > b.1 }
            if a.0.queued != b.0.queued { return a.0.queued < b.0.queued }
            return a.0.id < b.0.id
        }
        var routes = ranked.map { Route(.rsu, $0.0.id) }
        if let macro, macro.position.distance(to: position) <= macro.radius {
            routes.append(Route(.macro, macro.target))
        }
        return routes
    }
}
