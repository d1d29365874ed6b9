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

/// The default path policy (`BestRatePolicy`) as a function, for callers with loose inputs.
public enum PathChoice {
    public static func candidates(at position: Position, rsus: [RSUView], macro: MacroView?,
                                  cellular: CellularParameters) -> [Route] {
        BestRatePolicy().rank(PathContext(position: position, rsus: rsus, macro: macro, cellular: cellular))
    }
}
