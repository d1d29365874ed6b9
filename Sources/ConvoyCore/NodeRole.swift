/// The kinds of node a fleet is made of. Each node runs in its own OS process.
public enum NodeRole: String, Sendable, Hashable, Codable, CaseIterable {
    case vehicle
    case rsu
    case edge
    case cloud
}
