import ConvoyCore
import ConvoyWire

/// One incarnation of a node process, as the launcher saw it. Row of the `nodes` table;
/// `(nodeID, incarnation)` is unique. The coding keys are the column names.
public struct NodeRow: Codable, Sendable, Equatable {
    public var nodeID: String
    public var role: NodeRole
    /// 1 for the first process of a node; incremented on every restart.
    public var incarnation: Int
    /// The OS process id, when the process was spawned.
    public var pid: Int?
    /// Emulated seconds since the run started.
    public var startedAt: Double
    /// nil while the process runs.
    public var endedAt: Double?
    /// How the process ended: "exited 0", "killed by signal 9", …; nil while it runs.
    public var exitStatus: String?
    /// Position at start (metres, scenario frame), for nodes that have a fixed one.
    public var x: Double?
    public var y: Double?

    public init(nodeID: String, role: NodeRole, incarnation: Int, pid: Int? = nil, startedAt: Double,
                endedAt: Double? = nil, exitStatus: String? = nil, x: Double? = nil, y: Double? = nil) {
        self.nodeID = nodeID
        self.role = role
        self.incarnation = incarnation
        self.pid = pid
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.exitStatus = exitStatus
        self.x = x
        self.y = y
    }

    enum CodingKeys: String, CodingKey {
        case nodeID = "node_id", role, incarnation, pid, startedAt = "started_at", endedAt = "ended_at"
        case exitStatus = "exit_status", x, y
    }
}

/// One injected fault (a node killed, a link cut, …). Row of the `faults` table.
public struct FaultRow: Codable, Sendable, Equatable {
    /// Assigned by the database when nil at insertion.
    public var id: Int64?
    /// The node (or link) the fault applies to.
    public var nodeID: String
    /// What the fault does ("kill", "partition", …).
    public var mode: String
    public var startedAt: Double
    /// nil while the fault is active (or for instantaneous faults never ended).
    public var endedAt: Double?
    /// "scenario" (scripted in the scenario file), "live" (injected during the run) or
    /// "observed" (the launcher's own outage, `launcherOutage`).
    public var source: String
    public var detail: String?

    /// The mode of a row on node "launcher": the launcher (and the bus it hosts) did not run for a
    /// while (SIGSTOP, starved of CPU). Nodes' detections in its window are not node failures.
    public static let launcherOutage = "launcher-outage"

    public init(id: Int64? = nil, nodeID: String, mode: String, startedAt: Double, endedAt: Double? = nil,
                source: String, detail: String? = nil) {
        self.id = id
        self.nodeID = nodeID
        self.mode = mode
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.source = source
        self.detail = detail
    }

    enum CodingKeys: String, CodingKey {
        case id, nodeID = "node_id", mode, startedAt = "started_at", endedAt = "ended_at", source, detail
    }
}

/// Headline numbers of a run's requests.
public struct RunSummary: Sendable, Equatable {
    public var completed: Int
    public var failed: Int
    public var expired: Int
    /// Requests without a terminal status yet.
    public var open: Int
    /// Latency percentiles of completed requests (nearest-rank method: the smallest recorded
    /// `latency_ms` such that at least p % of completed latencies are ≤ it); nil when no completed
    /// request has a latency.
    public var p50Ms: Double?
    public var p95Ms: Double?
    public var p99Ms: Double?
    /// Distinct `vehicle_id`s among all requests.
    public var vehiclesWithRequests: Int

    public init(completed: Int, failed: Int, expired: Int, open: Int, p50Ms: Double?, p95Ms: Double?,
                p99Ms: Double?, vehiclesWithRequests: Int) {
        self.completed = completed
        self.failed = failed
        self.expired = expired
        self.open = open
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.p99Ms = p99Ms
        self.vehiclesWithRequests = vehiclesWithRequests
    }

    /// All requests, open ones included.
    public var total: Int { completed + failed + expired + open }
}

/// The rows of a run that its results are computed from, read in one transaction
/// (`RunDatabase.snapshot()`), each array in the order of its `fetch…` method.
public struct RunSnapshot: Sendable {
    public var requests: [RequestRecord]
    public var attempts: [AttemptRecord]
    public var detections: [DetectionRecord]
    public var nodes: [NodeRow]
    public var faults: [FaultRow]
    /// The `run_info` entries.
    public var runInfo: [String: String]
    /// What real model servers generated (none in a run without one, or from an older Convoy).
    public var outputs: [OutputRecord]
    public var fedRounds: [FedRoundRecord] = []
    public var fedUpdates: [FedUpdateRecord] = []
    public var fedEvals: [FedEvalRecord] = []
    public var analyticsCells: [AnalyticsCellRecord] = []
    public var counters: [CounterRecord] = []

    public init(requests: [RequestRecord] = [], attempts: [AttemptRecord] = [], detections: [DetectionRecord] = [],
                nodes: [NodeRow] = [], faults: [FaultRow] = [], runInfo: [String: String] = [:], outputs: [OutputRecord] = [],
                fed: (rounds: [FedRoundRecord], updates: [FedUpdateRecord], evals: [FedEvalRecord]) = ([], [], [])) {
        (fedRounds, fedUpdates, fedEvals) = fed
        self.requests = requests
        self.attempts = attempts
        self.detections = detections
        self.nodes = nodes
        self.faults = faults
        self.runInfo = runInfo
        self.outputs = outputs
    }
}
