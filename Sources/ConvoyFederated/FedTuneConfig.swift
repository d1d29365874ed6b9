/// A scenario's federated fine-tuning (`fedtune:`): the scheme, the adapter, the local training,
/// the clients and their data, where aggregation happens and the schemes' parameters.
public struct FedTuneConfig: Sendable, Equatable, Codable {
    public enum Scheme: String, Sendable, Codable, CaseIterable {
        /// Synchronous FedAvg over adapters (FL-LoRA, FL-P-Tuning, FL-Prompt-Tuning).
        case fedavg
        /// Clustered (CFL): one adapter per cluster.
        case clustered
        /// Hierarchical: RSU-level groups aggregated every round, the global model every κ2 rounds.
        case hierarchical
        /// Asynchronous, FedAsync's staleness-weighted mixing as each update arrives.
        case fedasync
        /// Asynchronous, buffered (FedBuff): K updates, then one step.
        case fedbuff

        public var isAsynchronous: Bool { self == .fedasync || self == .fedbuff }
    }

    public enum AdapterKind: String, Sendable, Codable, CaseIterable { case lora, prefix, prompt }

    public enum ClusterBy: String, Sendable, Codable, CaseIterable { case labels, updates }

    public var scheme: Scheme = .fedavg
    public var adapter: AdapterKind = .lora
    /// LoRA rank, scaling and the modules it adapts.
    public var rank = 8
    public var loraAlpha = 16.0
    public var targets = ["q_proj", "v_proj"]
    /// Prefix and prompt tuning: virtual tokens.
    public var virtualTokens = 16
    /// The trainer's model: `smollm2` (SmolLM2-135M-Instruct) or `tiny` (a random LLaMA-shaped model, for tests).
    public var model = "smollm2"
    /// The compute catalogue's model and the vehicles' device for the emulated training time.
    public var timingModel = "smollm2-135m"
    public var device = "jetson-agx-orin"
    /// Synchronous schemes: rounds; asynchronous: global versions. The run ends its training there.
    public var rounds = 8
    /// Clients selected per round (the first to ask); 0: all.
    public var participantsPerRound = 0
    public var localSteps = 3
    public var batch = 8
    public var learningRate = 2e-4
    public var sequenceLength = 128
    public var domains: [String] = []
    /// Each participating vehicle's mixture of domains (shares summing to 1).
    public var clients: [String: [String: Double]] = [:]
    public var samplesPerClient = 64
    public var testSamplesPerDomain = 32
    /// The node that aggregates (an RSU, an edge server or the cloud).
    public var aggregator = ""
    /// Emulated seconds after the start at which the first round opens.
    public var startAt = 1.0
    /// A round closes when every selected client's update is in, or this long after it opened.
    public var roundDeadline = 30.0
    /// Hierarchical: κ1 local rounds between RSU-level aggregations (a client trains κ1 × local
    /// steps per round), κ2 rounds between global aggregations.
    public var kappa1 = 1
    public var kappa2 = 2
    /// Asynchronous: FedAsync's α and a, the largest staleness accepted, FedBuff's K and server rate.
    public var stalenessAlpha = 0.6
    public var stalenessExponent = 0.5
    public var maxStaleness = 8
    public var bufferSize = 3
    public var serverRate = 1.0
    /// Asynchronous: evaluate every this many versions.
    public var evaluateEvery = 1
    public var clusters = 1
    public var clusterBy: ClusterBy = .labels
    public var chunkBytes = Chunking.defaultChunkBytes
    /// Seconds a vehicle waits for the rest of a transfer before it asks again.
    public var transferTimeout = 5.0

    public init() {}

    /// The domain that dominates a client's mixture (its label for clustering by labels).
    public func label(of vehicle: String) -> String? {
        clients[vehicle]?.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
    }

    /// The tokens a client's local training processes per round.
    public var tokensPerRound: Int { localSteps * batch * sequenceLength * (scheme == .hierarchical ? kappa1 : 1) }

    /// Client mixtures from a split rule: the `i`-th vehicle (in the order given) has domain
    /// `domains[i mod D]` with share `dominant`, the rest spread evenly over the other domains.
    public static func split(vehicles: [String], domains: [String], dominant: Double) -> [String: [String: Double]] {
        var out: [String: [String: Double]] = [:]
        for (i, v) in vehicles.enumerated() {
            let main = domains[i % domains.count]
            var mix = [main: domains.count == 1 ? 1 : dominant]
            if domains.count > 1, dominant < 1 {
                for d in domains where d != main { mix[d] = (1 - dominant) / Double(domains.count - 1) }
            }
            out[v] = mix
        }
        return out
    }
}
