import ConvoyCore

/// Topics on the broadcast bus (PUB/SUB prefixes).
///
/// A vehicle only receives the broadcasts it could hear: each RSU beacons on its own topic, and a
/// vehicle subscribes to the RSUs whose coverage it is in (with a margin, so the subscription is
/// in place before it enters); V2V beacons go on the topic of the sender's grid cell, and a
/// vehicle subscribes to the 3 × 3 cells around it. The cell is as large as the V2V range, so
/// every sender in range is in one of those nine cells.
public struct Topic: Sendable {
    public static let edgeBeacon = "beacon/edge"
    public static let cloudBeacon = "beacon/cloud"
    /// How far outside an RSU's radius a vehicle already listens to it, metres.
    public static let subscriptionMargin = 50.0

    /// Side of a V2V grid cell, metres.
    public let cellSize: Double

    /// Cells as large as the V2V range (`rangeM`, metres).
    public init(v2vRange rangeM: Double) {
        cellSize = max(rangeM, 1).rounded(.up)
    }

    public static func rsuBeacon(_ rsu: String) -> String { "beacon/rsu/\(rsu)/" }

    /// Requests, replies and cancels to one vehicle over V2V.
    public static func direct(_ vehicle: String) -> String { "direct/\(vehicle)/" }

    public func cell(of p: Position) -> (x: Int, y: Int) {
        (Int((p.x / cellSize).rounded(.down)), Int((p.y / cellSize).rounded(.down)))
    }

    public func v2v(at p: Position) -> String { Self.v2v(cell(of: p)) }

    /// The V2V topics of the 3 × 3 cells around `p`.
    public func v2vAround(_ p: Position) -> Set<String> {
        let c = cell(of: p)
        var topics: Set<String> = []
        for dx in -1...1 {
            for dy in -1...1 { topics.insert(Self.v2v((c.x + dx, c.y + dy))) }
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
