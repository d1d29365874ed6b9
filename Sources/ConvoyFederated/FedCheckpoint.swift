import Foundation

/// What an aggregator needs to carry on after a restart: the version it had reached and the
/// models of every cluster, with the cluster memberships. Written by the
/// aggregator's node after every new version (`FedAggregator.Action.checkpoint`), read by its next
/// incarnation (`FedAggregator.init(config:id:resume:)`). Uploads in flight and a round's
/// collected updates are not in it: they are lost with the aggregator, and the clients pull again.
public struct FedCheckpoint: Codable, Sendable, Equatable {
    public var scheme: String
    public var version: Int
    public var parameters: Int
    /// Cluster (0 for a single model) → adapter, float32 little-endian.
    public var models: [Int: Data]
    public var clusterOf: [String: Int]

    public static let fileName = "fedtune-checkpoint.json"

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(self)) ?? Data())
    }

    /// Nil when `bytes` is not a checkpoint.
    public static func decode(_ bytes: [UInt8]) -> FedCheckpoint? { try? JSONDecoder().decode(FedCheckpoint.self, from: Data(bytes)) }

    /// The models, if every one has `parameters` values.
    func adapters() -> [Int: Adapter]? {
        var models: [Int: Adapter] = [:]
        for (c, data) in self.models {
            guard let a = Adapter(bytes: Array(data), expected: parameters) else { return nil }
            models[c] = a
        }
        return models[0] == nil ? nil : models
    }
}
