/// One aggregation of federated fine-tuning (a synchronous round, or an asynchronous version) for
/// one cluster (0 when the scheme has one model; the RSU group's index for hierarchical rounds
/// that aggregate only at RSU level). Recorded by the aggregator. Table `fed_rounds`.
public struct FedRoundRecord: Codable, Sendable, Equatable {
    public var scheme: String
    public var round: Int
    public var cluster: Int
    /// `global`, `cluster`, `group` (RSU level of a hierarchical run).
    public var level: String
    public var startedAt: Double
    public var endedAt: Double
    /// Clients sent the model this round; their updates aggregated; selected but not aggregated.
    public var participants: Int
    public var aggregated: Int
    public var dropped: Int
    public var aggregatedAt: String
    /// Mean of the aggregated clients' training loss.
    public var trainLoss: Double?

    public init(scheme: String, round: Int, cluster: Int, level: String, startedAt: Double, endedAt: Double, participants: Int,
                aggregated: Int, dropped: Int, aggregatedAt: String, trainLoss: Double?) {
        self.scheme = scheme
        self.round = round
        self.cluster = cluster
        self.level = level
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.participants = participants
        self.aggregated = aggregated
        self.dropped = dropped
        self.aggregatedAt = aggregatedAt
        self.trainLoss = trainLoss
    }

    enum CodingKeys: String, CodingKey {
        case scheme, round, cluster, level, startedAt = "started_at", endedAt = "ended_at", participants, aggregated, dropped
        case aggregatedAt = "aggregated_at", trainLoss = "train_loss"
    }
}

/// One client update and what became of it. Recorded by the aggregator. Table `fed_updates`.
public struct FedUpdateRecord: Codable, Sendable, Equatable {
    public enum Outcome: String, Codable, Sendable {
        /// Aggregated (FedBuff: buffered and applied).
        case aggregated
        /// Arrived after its round closed.
        case late
        /// Staler than the scheme accepts.
        case stale
        /// Never arrived whole (the vehicle left coverage, its RSU failed, chunks were lost), or
        /// accepted by an aggregator that died before its round closed.
        case lost
        /// Accepted into a round (or FedBuff's buffer) that had not closed when the run ended.
        case unapplied
    }

    public var vehicleID: String
    /// The global version the update was trained from (the round minus one, synchronously).
    public var baseVersion: Int
    /// The round (synchronous) or version (asynchronous) it was counted in.
    public var round: Int
    public var cluster: Int
    public var transfer: Int
    public var bytes: Int
    public var chunksReceived: Int
    public var chunks: Int
    public var samples: Int
    public var trainLoss: Double?
    /// Emulated seconds the training took on the vehicle's device; real seconds the trainer took.
    public var trainSeconds: Double?
    public var realTrainSeconds: Double?
    public var uploadStartedAt: Double?
    /// When the last chunk reached the aggregator (nil: never).
    public var uploadEndedAt: Double?
    /// The first hop the upload came through (an RSU), or the hops of its chunks joined by `+`.
    public var via: String
    public var outcome: Outcome
    public var staleness: Int
    public var recordedBy: String

    public init(vehicleID: String, baseVersion: Int, round: Int, cluster: Int, transfer: Int, bytes: Int, chunksReceived: Int, chunks: Int,
                samples: Int, trainLoss: Double?, trainSeconds: Double?, realTrainSeconds: Double?, uploadStartedAt: Double?,
                uploadEndedAt: Double?, via: String, outcome: Outcome, staleness: Int, recordedBy: String) {
        self.vehicleID = vehicleID
        self.baseVersion = baseVersion
        self.round = round
        self.cluster = cluster
        self.transfer = transfer
        self.bytes = bytes
        self.chunksReceived = chunksReceived
        self.chunks = chunks
        self.samples = samples
        self.trainLoss = trainLoss
        self.trainSeconds = trainSeconds
        self.realTrainSeconds = realTrainSeconds
        self.uploadStartedAt = uploadStartedAt
        self.uploadEndedAt = uploadEndedAt
        self.via = via
        self.outcome = outcome
        self.staleness = staleness
        self.recordedBy = recordedBy
    }

    enum CodingKeys: String, CodingKey {
        case vehicleID = "vehicle_id", baseVersion = "base_version", round, cluster, transfer, bytes
        case chunksReceived = "chunks_received", chunks, samples, trainLoss = "train_loss", trainSeconds = "train_s"
        case realTrainSeconds = "real_train_s", uploadStartedAt = "upload_started_at", uploadEndedAt = "upload_ended_at", via, outcome
        case staleness, recordedBy = "recorded_by"
    }
}

/// Held-out evaluation of an aggregated model on one domain (`*`: the mean over the clients of
/// each client's loss on its own domain mixture with the model it uses). Table `fed_evals`.
public struct FedEvalRecord: Codable, Sendable, Equatable {
    public var round: Int
    public var cluster: Int
    public var domain: String
    public var loss: Double
    public var perplexity: Double
    /// Emulated seconds when the round's model existed (its aggregation), not when Python finished.
    public var at: Double
    public var recordedBy: String

    public init(round: Int, cluster: Int, domain: String, loss: Double, perplexity: Double, at: Double, recordedBy: String) {
        self.round = round
        self.cluster = cluster
        self.domain = domain
        self.loss = loss
        self.perplexity = perplexity
        self.at = at
        self.recordedBy = recordedBy
    }

    enum CodingKeys: String, CodingKey {
        case round, cluster, domain, loss, perplexity, at, recordedBy = "recorded_by"
    }
}

/// Federated analytics: one road cell of the aggregator's estimate (`source` "estimate", recorded
/// by the aggregator) or of the ground truth the trace gives (`source` "truth", recorded by the
/// launcher from every vehicle's trajectory). Table `analytics_cells`.
public struct AnalyticsCellRecord: Codable, Sendable, Equatable {
    public var source: String
    public var cellX: Int
    public var cellY: Int
    /// Vehicles counted in the cell (noised in a private estimate) and their mean speed (m/s).
    public var vehicles: Double
    public var meanSpeed: Double?
    /// Vehicles whose answers the estimate sums (the truth: vehicles on the road in the window).
    public var contributors: Int
    public var epsilon: Double?
    public var at: Double
    public var recordedBy: String

    public init(source: String, cellX: Int, cellY: Int, vehicles: Double, meanSpeed: Double?, contributors: Int, epsilon: Double?,
                at: Double, recordedBy: String) {
        self.source = source
        self.cellX = cellX
        self.cellY = cellY
        self.vehicles = vehicles
        self.meanSpeed = meanSpeed
        self.contributors = contributors
        self.epsilon = epsilon
        self.at = at
        self.recordedBy = recordedBy
    }

    public static let estimate = "estimate", truth = "truth"

    enum CodingKeys: String, CodingKey {
        case source, cellX = "cell_x", cellY = "cell_y", vehicles, meanSpeed = "mean_speed", contributors, epsilon, at
        case recordedBy = "recorded_by"
    }
}
