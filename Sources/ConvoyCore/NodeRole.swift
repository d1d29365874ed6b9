/// The kinds of node a fleet is made of. Each node runs in its own OS process.
///
/// A role is registered here, in one place: its wire code, whether it is infrastructure (a server
/// process with a ROUTER endpoint) and the link it uses towards its next hop. Every switch over
/// roles is exhaustive, so a new role cannot fall into a `default:` branch.
public enum NodeRole: String, Sendable, Hashable, Codable, CaseIterable {
    case vehicle
    case rsu
    case edge
    case cloud

    /// The role's number on the wire (PROTOCOL.md).
    public var wireCode: UInt8 {
        switch self {
        case .vehicle: 0
        case .rsu: 1
        case .edge: 2
        case .cloud: 3
        }
    }

    public init?(wireCode: UInt8) {
        guard let role = Self.allCases.first(where: { $0.wireCode == wireCode }) else { return nil }
        self = role
    }

    /// Servers (RSU, edge, cloud) bind a ROUTER endpoint, beacon, and may be faulted.
    public var isServer: Bool {
        switch self {
        case .vehicle: false
        case .rsu, .edge, .cloud: true
        }
    }

    /// The wired link a node of this role uses towards its next hop (nil: it has none).
    public var uplink: LinkName? {
        switch self {
        case .vehicle, .cloud: nil
        case .rsu: .backhaul
        case .edge: .wan
        }
    }
}
