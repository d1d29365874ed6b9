import ConvoyCore

/// Topics on the broadcast bus (PUB/SUB prefixes).
///
/// A vehicle only receives the broadcasts it could hear: each RSU beacons on its own topic, and a
/// vehicle subscribes to the RSUs whose coverage it is in (with a margin, so the subscription is
/// in place before it enters); V2V beacons go on the topic of the sender's grid cell, and a
/// vehicle subscribes to the cells that come within the V2V range (plus `v2vMargin`) of it, so
/// every sender in range is in one of them. Cells are half the range wide: the cells a vehicle
/// hears then cover about 5.4 r² instead of the 9 r² of a 3 × 3 block of range-wide cells, so it
/// receives (and drops as out of range) about 40 % fewer beacons in a dense area.
public struct Topic: Sendable {
    public static let edgeBeacon = "beacon/edge"
    public static let cloudBeacon = "beacon/cloud"
    /// How far outside an RSU's radius a vehicle already listens to it, metres.
    public static let subscriptionMargin = 50.0

    /// How far beyond the V2V range a vehicle listens, metres: covers how far it and a sender
    /// move between two updates of its subscriptions.
    public static let v2vMargin = 25.0

    /// Side of a V2V grid cell, metres.
    public let cellSize: Double
    /// How far from a vehicle a cell may start and still be subscribed: V2V range + margin, metres.
    public let v2vReach: Double

    /// Cells half as wide as the V2V range (`rangeM`, metres).
    public init(v2vRange rangeM: Double) {
        cellSize = max(rangeM / 2, 1).rounded(.up)
        v2vReach = max(rangeM, 1) + Self.v2vMargin
    }

    public static func rsuBeacon(_ rsu: String) -> String { "beacon/rsu/\(rsu)/" }

    /// Requests, replies and cancels to one vehicle over V2V.
    public static func direct(_ vehicle: String) -> String { "direct/\(vehicle)/" }

    public func cell(of p: Position) -> (x: Int, y: Int) {
        (Int((p.x / cellSize).rounded(.down)), Int((p.y / cellSize).rounded(.down)))
    }

    public func v2v(at p: Position) -> String { Self.v2v(cell(of: p)) }

    /// The V2V topics of the cells whose nearest point is within `v2vReach` of `p`.
    public func v2vAround(_ p: Position) -> Set<String> {
        let c = cell(of: p)
        let k = Int((v2vReach / cellSize).rounded(.up))
        var topics: Set<String> = []
        for x in (c.x - k)...(c.x + k) {
            let dx = max(Double(x) * cellSize - p.x, 0, p.x - Double(x + 1) * cellSize)
            for y in (c.y - k)...(c.y + k) {
                let dy = max(Double(y) * cellSize - p.y, 0, p.y - Double(y + 1) * cellSize)
                if dx * dx + dy * dy <= v2vReach * v2vReach { topics.insert(Self.v2v((x, y))) }
            }
        }
        return topics
    }

    private static func v2v(_ c: (x: Int, y: Int)) -> String { "v2v/\(c.x)/\(c.y)/" }
}

extension Topic {
    /// The topic a server of `role` beacons on (nil: vehicles beacon over V2V instead).
    public static func beacon(of role: NodeRole, id: String) -> String? {
        switch role {
        case .vehicle: nil
        case .rsu: rsuBeacon(id)
        case .edge: edgeBeacon
        case .cloud: cloudBeacon
        }
    }
}
