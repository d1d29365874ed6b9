/// Records that nodes send to the run's recorder (the launcher, the single writer of `run.sqlite`).
///
/// A node batches its records and sends them as one `record` message whose payload is the JSON
/// encoding of `RecordBatch`. The coding keys are the SQLite column names.
public struct RecordBatch: Codable, Sendable, Equatable {
    public var requests: [RequestRecord]
    public var attempts: [AttemptRecord]
    public var detections: [DetectionRecord]
    public var counters: [CounterRecord]

    public init(requests: [RequestRecord] = [], attempts: [AttemptRecord] = [],
                detections: [DetectionRecord] = [], counters: [CounterRecord] = []) {
        self.requests = requests
        self.attempts = attempts
        self.detections = detections
        self.counters = counters
    }

    public var isEmpty: Bool {
        requests.isEmpty && attempts.isEmpty && detections.isEmpty && counters.isEmpty
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
    }
}

/// One try of a request on one path. Sent when the attempt starts (`outcome` "pending") and when it
/// ends; the recorder keeps the latest version (upsert by `requestID`, `attempt`).
public struct AttemptRecord: Codable, Sendable, Equatable {
    public var requestID: String
    /// 1 for the first attempt of a request.
    public var attempt: Int
    public var path: String
    /// The node the vehicle sent the attempt to (an RSU, or the cloud over the macro cell).
    public var target: String
    public var sentAt: Double
    public var endedAt: Double?
    /// pending, replied, rejected, target-dead, timeout, superseded, abandoned.
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

    public init(nodeID: String, name: String, value: Int) {
        self.nodeID = nodeID
        self.name = name
        self.value = value
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", name, value
    }
}
