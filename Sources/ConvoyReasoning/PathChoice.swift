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
    /// Vehicles active in the macro cell and requests waiting at the cloud, from the cloud's last beacon.
    public var activeVehicles: Int
    public var queued: Int

    public init(position: Position, radius: Double, target: String, activeVehicles: Int = 0, queued: Int = 0) {
        self.position = position
        self.radius = radius
        self.target = target
        self.activeVehicles = activeVehicles
        self.queued = queued
    }
}

/// The vehicle's own compute as its policy sees it.
public struct OnboardView: Sendable, Equatable {
    /// The vehicle's id (the on-board route's target).
    public var id: String
    /// Seconds until the answer if the request were admitted now; nil if it would be refused
    /// (full, or the model does not fit).
    public var finishIn: Double?

    public init(id: String, finishIn: Double?) {
        self.id = id
        self.finishIn = finishIn
    }
}

/// A neighbour vehicle heard over V2V, with what its last beacon offered.
public struct NeighbourView: Sendable, Equatable {
    public var id: String
    public var position: Position
    /// On-board compute slots it had free.
    public var freeSlots: Int
    /// The cellular rate, bits/s, it had at its best RSU (0: none in range, cannot relay).
    public var uplinkRate: Double

    public init(id: String, position: Position, freeSlots: Int = 0, uplinkRate: Double = 0) {
        self.id = id
        self.position = position
        self.freeSlots = freeSlots
        self.uplinkRate = uplinkRate
    }

    public var canCompute: Bool { freeSlots > 0 }
}

/// The default path policy (`BestRatePolicy`) as a function, for callers with loose inputs.
public enum PathChoice {
    public static func candidates(at position: Position, rsus: [RSUView], macro: MacroView?,
                                  cellular: CellularParameters) -> [Route] {
        BestRatePolicy().rank(PathContext(position: position, rsus: rsus, macro: macro, cellular: cellular))
    }
}
