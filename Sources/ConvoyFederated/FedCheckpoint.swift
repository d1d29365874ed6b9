import ConvoyWire
import Foundation

/// What an aggregator needs to carry on after a restart: the version it had reached and the
/// models of every cluster, with the cluster memberships (an RSU group: its model and the samples
/// and losses of the group rounds since the last global model). Written by the aggregator's node
/// after every new version (`FedAggregator.Action.checkpoint`), read by its next incarnation
/// (`FedAggregator.init(config:id:tier:resume:pending:)`). Uploads in flight and a round's
/// collected updates are not in it: they are lost with the aggregator, and the clients pull again;
/// the updates it had accepted are in the pending file (`Action.pending`), which the next
/// incarnation records as lost.
public struct FedCheckpoint: Codable, Sendable, Equatable {
    public var scheme: String
    public var version: Int
    public var parameters: Int
    /// Cluster (0 for a single model) → adapter, float32 little-endian.
    public var models: [Int: Data]
    public var clusterOf: [String: Int]
    /// An RSU group: the samples and training losses of its rounds since the last global model.
    public var cycleSamples: Int?
    public var cycleLosses: [Double]?

    public static let fileName = "fedtune-checkpoint.json"
    /// The updates accepted in the open round (`FedAggregator.Action.pending`).
    public static let pendingFileName = "fedtune-pending.json"

    /// The pending file's bytes.
    public static func encodePending(_ records: [FedUpdateRecord]) -> [UInt8] {
        Array((try? JSONEncoder().encode(records)) ?? Data())
    }

    /// Nil when `bytes` is not a pending file.
    public static func decodePending(_ bytes: [UInt8]) -> [FedUpdateRecord]? {
        try? JSONDecoder().decode([FedUpdateRecord].self, from: Data(bytes))
    }

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
