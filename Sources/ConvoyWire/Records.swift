/// Records that nodes send to the run's recorder (the launcher, the single writer of `run.sqlite`).
///
/// A node batches its records and sends them as one `record` message whose payload is the JSON
/// encoding of `RecordBatch`. The coding keys are the SQLite column names.
public struct RecordBatch: Codable, Sendable, Equatable {
    public var requests: [RequestRecord]
    public var attempts: [AttemptRecord]
    public var detections: [DetectionRecord]
    public var counters: [CounterRecord]
    public var linkStats: [LinkStatRecord]
    public var linkSamples: [LinkSampleRecord]
    public var handovers: [HandoverRecord]
    public var outputs: [OutputRecord]
    public var fedRounds: [FedRoundRecord]
    public var fedUpdates: [FedUpdateRecord]
    public var fedEvals: [FedEvalRecord]
    public var analyticsCells: [AnalyticsCellRecord]

    public init(requests: [RequestRecord] = [], attempts: [AttemptRecord] = [],
                detections: [DetectionRecord] = [], counters: [CounterRecord] = [],
                linkStats: [LinkStatRecord] = [], linkSamples: [LinkSampleRecord] = [], handovers: [HandoverRecord] = [],
                outputs: [OutputRecord] = [], fedRounds: [FedRoundRecord] = [], fedUpdates: [FedUpdateRecord] = [],
                fedEvals: [FedEvalRecord] = [], analyticsCells: [AnalyticsCellRecord] = []) {
        self.analyticsCells = analyticsCells
        self.fedRounds = fedRounds
        self.fedUpdates = fedUpdates
        self.fedEvals = fedEvals
        self.requests = requests
        self.attempts = attempts
        self.detections = detections
        self.counters = counters
        self.linkStats = linkStats
        self.linkSamples = linkSamples
        self.handovers = handovers
        self.outputs = outputs
    }

    public var isEmpty: Bool { rowCount == 0 }

    /// The rows of this batch that `node` may record: its own requests and their attempts, its
    /// detections, counters, link figures and handovers. A node's records arrive authenticated
    /// by its key; rows about anyone else are forgeries (counted by the caller, `rowCount` minus
    /// the result's).
    public func owned(by node: String) -> RecordBatch {
        var kept = self
        kept.requests.removeAll { $0.vehicleID != node || !$0.requestID.hasPrefix(node + "/") }
        kept.attempts.removeAll { !$0.requestID.hasPrefix(node + "/") }
        kept.detections.removeAll { $0.observer != node }
        kept.counters.removeAll { $0.nodeID != node }
        kept.linkStats.removeAll { $0.nodeID != node }
        kept.linkSamples.removeAll { $0.nodeID != node }
        kept.handovers.removeAll { $0.vehicleID != node }
        kept.outputs.removeAll { $0.servedBy != node }
        kept.fedRounds.removeAll { $0.aggregatedAt != node }
        kept.fedUpdates.removeAll { $0.recordedBy != node }
        kept.fedEvals.removeAll { $0.recordedBy != node }
        kept.analyticsCells.removeAll { $0.recordedBy != node || $0.source != AnalyticsCellRecord.estimate }
        return kept
    }

    /// How many rows the batch carries, all tables together.
    public var rowCount: Int {
        requests.count + attempts.count + detections.count + counters.count + linkStats.count + linkSamples.count + handovers.count
            + outputs.count + fedRounds.count + fedUpdates.count + fedEvals.count + analyticsCells.count
    }

    enum CodingKeys: String, CodingKey {
        case requests, attempts, detections, counters
        case linkStats = "link_stats", linkSamples = "link_samples", handovers, outputs
        case fedRounds = "fed_rounds", fedUpdates = "fed_updates", fedEvals = "fed_evals", analyticsCells = "analytics_cells"
    }

    /// Every array may be absent (an empty batch of that kind).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requests = try c.decodeIfPresent([RequestRecord].self, forKey: .requests) ?? []
        attempts = try c.decodeIfPresent([AttemptRecord].self, forKey: .attempts) ?? []
        detections = try c.decodeIfPresent([DetectionRecord].self, forKey: .detections) ?? []
        counters = try c.decodeIfPresent([CounterRecord].self, forKey: .counters) ?? []
        linkStats = try c.decodeIfPresent([LinkStatRecord].self, forKey: .linkStats) ?? []
        linkSamples = try c.decodeIfPresent([LinkSampleRecord].self, forKey: .linkSamples) ?? []
        handovers = try c.decodeIfPresent([HandoverRecord].self, forKey: .handovers) ?? []
        outputs = try c.decodeIfPresent([OutputRecord].self, forKey: .outputs) ?? []
        fedRounds = try c.decodeIfPresent([FedRoundRecord].self, forKey: .fedRounds) ?? []
        analyticsCells = try c.decodeIfPresent([AnalyticsCellRecord].self, forKey: .analyticsCells) ?? []
        fedUpdates = try c.decodeIfPresent([FedUpdateRecord].self, forKey: .fedUpdates) ?? []
        fedEvals = try c.decodeIfPresent([FedEvalRecord].self, forKey: .fedEvals) ?? []
    }
}

/// Terminal states of a request. Every request ends in exactly one of them.
public enum RequestStatus: String, Codable, Sendable, CaseIterable {
    case completed
    case failed
    case expired
}

/// One inference request of a vehicle. Sent when the request is created (`status` nil) and again
/// when it ends; the recorder keeps the latest version (upsert by `requestID`).
public struct RequestRecord: Codable, Sendable, Equatable {
    public var requestID: String
    public var vehicleID: String
    public var createdAt: Double
    public var deadlineAt: Double
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    public var payloadBytes: Int
    /// nil while the request is open.
    public var status: RequestStatus?
    public var finishedAt: Double?
    /// The node that computed the answer.
    public var servedBy: String?
    /// The access path of the successful attempt (see `AccessPath`).
    public var path: String?
    public var attempts: Int
    public var latencyMs: Double?
    /// Why a request failed or expired.
    public var reason: String?
    public var queueWaitMs: Double?
    public var computeMs: Double?
    public var networkMs: Double?
    public var deadlineMet: Bool?
    /// The task of the scenario's mix.
    public var task: String?
    /// Answered by a neighbour's shared result instead of an attempt of its own.
    public var cacheHit: Bool?
    /// Sum of the prices (scenario `prices:`) of the attempts sent.
    public var cost: Double?
    /// Split inference: the layers run on board (0: none), the bytes handed up to the server (the
    /// activations and KV cache at the split; they cross every hop to the server), and the on-board
    /// stage's time. The server's stage is `computeMs`. Nil for a task that does not split.
    public var splitK: Int?
    public var splitBytes: Int?
    public var lowerStageMs: Double?

    public init(requestID: String, vehicleID: String, createdAt: Double, deadlineAt: Double, model: String,
                inputTokens: Int, outputTokens: Int, payloadBytes: Int, status: RequestStatus? = nil,
                finishedAt: Double? = nil, servedBy: String? = nil, path: String? = nil, attempts: Int = 0,
                latencyMs: Double? = nil, reason: String? = nil, queueWaitMs: Double? = nil,
                computeMs: Double? = nil, networkMs: Double? = nil, deadlineMet: Bool? = nil) {
        self.requestID = requestID
        self.vehicleID = vehicleID
        self.createdAt = createdAt
        self.deadlineAt = deadlineAt
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.status = status
        self.finishedAt = finishedAt
        self.servedBy = servedBy
        self.path = path
        self.attempts = attempts
        self.latencyMs = latencyMs
        self.reason = reason
        self.queueWaitMs = queueWaitMs
        self.computeMs = computeMs
        self.networkMs = networkMs
        self.deadlineMet = deadlineMet
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", vehicleID = "vehicle_id", createdAt = "created_at"
        case deadlineAt = "deadline_at", model, inputTokens = "input_tokens", outputTokens = "output_tokens"
        case payloadBytes = "payload_bytes", status, finishedAt = "finished_at", servedBy = "served_by"
        case path, attempts, latencyMs = "latency_ms", reason, queueWaitMs = "queue_wait_ms"
        case computeMs = "compute_ms", networkMs = "network_ms", deadlineMet = "deadline_met"
        case task, cacheHit = "cache_hit", cost
        case splitK = "split_k", splitBytes = "split_bytes", lowerStageMs = "lower_stage_ms"
    }
}

/// One try of a request on one path. Sent when the attempt starts (`outcome` "pending") and when it
/// ends; the recorder keeps the latest version (upsert by `requestID`, `attempt`).
public struct AttemptRecord: Codable, Sendable, Equatable {
    public var requestID: String
    /// 1 for the first attempt of a request.
    public var attempt: Int
    public var path: String
    /// The node the vehicle sent the attempt to (an RSU, the cloud over the macro cell, itself on
    /// board, or a neighbour vehicle over V2V).
    public var target: String
    public var sentAt: Double
    public var endedAt: Double?
    /// pending, replied, rejected, failed, target-dead, out-of-range, timeout, deadline, cancelled
    /// (a hedge partner answered first), superseded (a shared result answered), abandoned.
    public var outcome: String
    public var detail: String?

    public init(requestID: String, attempt: Int, path: String, target: String, sentAt: Double,
                endedAt: Double? = nil, outcome: String, detail: String? = nil) {
        self.requestID = requestID
        self.attempt = attempt
        self.path = path
        self.target = target
        self.sentAt = sentAt
        self.endedAt = endedAt
        self.outcome = outcome
        self.detail = detail
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", attempt, path, target, sentAt = "sent_at", endedAt = "ended_at"
        case outcome, detail
    }
}

/// A node's view of a peer changed (suspect, dead, alive again).
public struct DetectionRecord: Codable, Sendable, Equatable {
    public var observer: String
    public var peer: String
    public var state: String
    public var at: Double

    public init(observer: String, peer: String, state: String, at: Double) {
        self.observer = observer
        self.peer = peer
        self.state = state
        self.at = at
    }
}

/// A named counter of a node (frames dropped as malformed, messages lost on a link, …); the
/// recorder keeps the latest value (upsert by `nodeID`, `name`).
public struct CounterRecord: Codable, Sendable, Equatable {
    public var nodeID: String
    public var name: String
    public var value: Int

    /// Counters that are levels, not counts (a restarted node's value replaces its previous one's
    /// rather than adding to it).
    public static let levels: Set<String> = ["fed_adapter_parameters", "fed_resumed_from_version", "v2v_neighbours"]
    /// The largest timer lateness seen (the largest over a node's incarnations).
    public static let lateMaximum = "timer_late_max_us"

    public init(nodeID: String, name: String, value: Int) {
        self.nodeID = nodeID
        self.name = name
        self.value = value
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", name, value
    }
}

/// Per node, emulated link and message kind: how many messages the node offered to the link model
/// and what became of them. The recorder keeps the latest totals (upsert by node, link, kind).
public struct LinkStatRecord: Codable, Sendable, Equatable {
    public var nodeID: String
    /// cellular-up, cellular-down, macro-up, macro-down, backhaul, wan, v2v, rsu-beacon.
    public var link: String
    /// Message kind: beacon, v2v_beacon, request, reply.
    public var kind: String
    public var sent: Int
    public var delivered: Int
    public var lost: Int
    public var outOfRange: Int
    /// Bytes offered to the link (frames plus the payload and result bytes they stand for).
    public var bytes: Int

    public init(nodeID: String, link: String, kind: String, sent: Int = 0, delivered: Int = 0, lost: Int = 0, outOfRange: Int = 0,
                bytes: Int = 0) {
        self.bytes = bytes
        self.nodeID = nodeID
        self.link = link
        self.kind = kind
        self.sent = sent
        self.delivered = delivered
        self.lost = lost
        self.outOfRange = outOfRange
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", link, kind, sent, delivered, lost, outOfRange = "out_of_range", bytes
    }

    /// A batch from before `bytes` decodes with 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nodeID = try c.decode(String.self, forKey: .nodeID)
        link = try c.decode(String.self, forKey: .link)
        kind = try c.decode(String.self, forKey: .kind)
        sent = try c.decode(Int.self, forKey: .sent)
        delivered = try c.decode(Int.self, forKey: .delivered)
        lost = try c.decode(Int.self, forKey: .lost)
        outOfRange = try c.decode(Int.self, forKey: .outOfRange)
        bytes = try c.decodeIfPresent(Int.self, forKey: .bytes) ?? 0
    }
}

/// One delivered message (a sample of them): when the link model said it would be delivered, and
/// when it actually was (both emulated seconds). Appended.
public struct LinkSampleRecord: Codable, Sendable, Equatable {
    /// The node that observed the delivery.
    public var nodeID: String
    public var link: String
    public var kind: String
    public var sentAt: Double
    public var modelledAt: Double
    public var actualAt: Double

    public init(nodeID: String, link: String, kind: String, sentAt: Double, modelledAt: Double, actualAt: Double) {
        self.nodeID = nodeID
        self.link = link
        self.kind = kind
        self.sentAt = sentAt
        self.modelledAt = modelledAt
        self.actualAt = actualAt
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", link, kind, sentAt = "sent_at", modelledAt = "modelled_at", actualAt = "actual_at"
    }
}

/// A vehicle's serving cell changed. `event` is attach (none → cell), detach (cell → none) or
/// handover (cell → another cell); cells are RSU ids or the macro cell's id. Appended.
public struct HandoverRecord: Codable, Sendable, Equatable {
    public var vehicleID: String
    public var at: Double
    public var event: String
    public var fromCell: String?
    public var toCell: String?
    public var x: Double
    public var y: Double

    public init(vehicleID: String, at: Double, event: String, fromCell: String?, toCell: String?, x: Double, y: Double) {
        self.vehicleID = vehicleID
        self.at = at
        self.event = event
        self.fromCell = fromCell
        self.toCell = toCell
        self.x = x
        self.y = y
    }

    enum CodingKeys: String, CodingKey {
        case vehicleID = "vehicle_id", at, event, fromCell = "from_cell", toCell = "to_cell", x, y
    }
}

/// What a real model server generated for one job (all the attempts of a request that reached the
/// same server share it), recorded by the server node that called it. Appended.
public struct OutputRecord: Codable, Sendable, Equatable {
    public var requestID: String
    public var servedBy: String
    public var model: String
    public var prompt: String
    public var answer: String
    /// Token counts from the server's `usage`.
    public var promptTokens: Int?
    public var completionTokens: Int?
    /// Measured on the wall clock: time to the first token, the whole call, decode rate after the
    /// first token.
    public var ttftMs: Double?
    public var wallMs: Double
    public var decodeTokensPerS: Double?
    /// Emulated: when the call started, its compute time (`time_scale` × wall), and how much later
    /// than due the answer came (the emulation could not hold it back).
    public var startedAt: Double
    public var computeMs: Double
    public var lateMs: Double
    /// Why the call failed (nil: it succeeded).
    public var failure: String?

    public init(requestID: String, servedBy: String, model: String, prompt: String, answer: String, promptTokens: Int? = nil,
                completionTokens: Int? = nil, ttftMs: Double? = nil, wallMs: Double, decodeTokensPerS: Double? = nil,
                startedAt: Double, computeMs: Double, lateMs: Double = 0, failure: String? = nil) {
        self.requestID = requestID
        self.servedBy = servedBy
        self.model = model
        self.prompt = prompt
        self.answer = answer
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.ttftMs = ttftMs
        self.wallMs = wallMs
        self.decodeTokensPerS = decodeTokensPerS
        self.startedAt = startedAt
        self.computeMs = computeMs
        self.lateMs = lateMs
        self.failure = failure
    }

    enum CodingKeys: String, CodingKey {
        case requestID = "request_id", servedBy = "served_by", model, prompt, answer, promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens", ttftMs = "ttft_ms", wallMs = "wall_ms", decodeTokensPerS = "decode_tokens_per_s"
        case startedAt = "started_at", computeMs = "compute_ms", lateMs = "late_ms", failure
    }
}
