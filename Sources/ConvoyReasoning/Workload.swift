import ConvoyCore

/// One kind of request in a scenario's task mix (`workload.tasks`).
public struct TaskSpec: Sendable, Equatable, Codable {
    public var name: String
    /// Relative frequency in the mix.
    public var weight: Double
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    /// Seconds from creation to deadline.
    public var deadline: Double
    public var payloadBytes: Int
    public var resultBytes: Int
    /// Whether the result is useful to neighbours in the same area (broadcast over V2V and reused).
    public var shareable: Bool
    /// Real prompts (the task's `prompts:` file), drawn per request; nil: the task has none.
    public var prompts: [String]?
    /// Split inference (`split:`): the first k layers on board, the rest on a server; nil: not split.
    public var split: SplitChoice?
    /// Expert models (`subtasks:`): the experts (names of the scenario's `experts:`) a request
    /// decomposes into, one subtask each, sent to neighbours holding them; empty: not decomposed.
    public var subtasks: [String] = []
    /// A model split across vehicles (`pipeline:`): the stages, each on a neighbour over V2V; 0: not.
    public var pipeline = 0

    public init(name: String = "default", weight: Double = 1, model: String = "llama-3-8b", inputTokens: Int = 256,
                outputTokens: Int = 32, deadline: Double = 5, payloadBytes: Int = 20_000, resultBytes: Int = 2_000,
                shareable: Bool = false) {
        self.name = name
        self.weight = weight
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.deadline = deadline
        self.payloadBytes = payloadBytes
        self.resultBytes = resultBytes
        self.shareable = shareable
    }
}

/// What and how often a vehicle asks (scenario `workload:`).
public struct WorkloadSpec: Sendable, Equatable, Codable {
    public enum Arrival: String, Sendable, Codable, CaseIterable {
        case poisson, periodic
        /// Listed in a file (`arrivals:`), per vehicle.
        case file
    }

    public var arrival: Arrival
    /// Mean seconds between a vehicle's requests (poisson, periodic).
    public var meanInterval: Double
    /// The task mix; never empty.
    public var tasks: [TaskSpec]
    /// The arrivals file (absolute path) when `arrival` is `.file`.
    public var arrivalsPath: String?
    /// Seconds a shared result stays usable by neighbours.
    public var freshness: Double
    /// Side, metres, of the square areas a shareable result is valid for.
    public var sharingArea: Double

    public init(arrival: Arrival = .poisson, meanInterval: Double = 2, tasks: [TaskSpec] = [TaskSpec()], arrivalsPath: String? = nil,
                freshness: Double = 10, sharingArea: Double = 200) {
        precondition(!tasks.isEmpty, "a workload has at least one task")
        self.arrival = arrival
        self.meanInterval = meanInterval
        self.tasks = tasks
        self.arrivalsPath = arrivalsPath
        self.freshness = freshness
        self.sharingArea = sharingArea
    }

    /// Emulated seconds a vehicle lets its open requests finish when the run ends.
    public var drainTime: Double { min(longestDeadline, 5) }

    public var longestDeadline: Double { tasks.map(\.deadline).max()! }

    public func task(named name: String) -> TaskSpec? { tasks.first { $0.name == name } }

    /// Seconds until the next request (poisson, periodic; a file lists its instants instead).
    public func nextInterval(using rng: inout SeededGenerator) -> Double {
        switch arrival {
        case .poisson: rng.exponential(mean: meanInterval)
        case .periodic, .file: meanInterval
        }
    }

    /// A task drawn from the mix by weight. A single-task mix draws nothing (so adding the mix did
    /// not change the random streams of single-task scenarios).
    public func pickTask(using rng: inout SeededGenerator) -> TaskSpec {
        guard tasks.count > 1 else { return tasks[0] }
        let total = tasks.reduce(0) { $0 + $1.weight }
        var draw = rng.unit() * total
        for task in tasks {
            if draw < task.weight { return task }
            draw -= task.weight
        }
        return tasks.last { $0.weight > 0 }!
    }

    /// The key under which a shareable result of `task` obtained at `position` is reused.
    public func sharingKey(task: String, at position: Position) -> String {
        let ax = Int((position.x / sharingArea).rounded(.down)), ay = Int((position.y / sharingArea).rounded(.down))
        return "\(task)@\(ax),\(ay)"
    }
}

/// Where a split task's requests split (`split:` of a task): a fixed number of layers run on board,
/// or the layer count chosen per request by `LatencyMinimisingSplit`.
public enum SplitChoice: Sendable, Equatable, Codable {
    case fixed(Int)
    case auto
}

/// An expert model some vehicles carry (scenario `experts:`): its name, the model it runs, and who
/// holds it — listed vehicles, or a share of the fleet drawn from the seed (each vehicle alone:
/// every vehicle can tell who holds what, as if from a directory).
public struct ExpertSpec: Sendable, Equatable, Codable {
    public var name: String
    public var model: String
    public var share: Double
    public var holders: [String]?

    public init(name: String, model: String, share: Double = 0, holders: [String]? = nil) {
        self.name = name
        self.model = model
        self.share = share
        self.holders = holders
    }

    public func holds(_ vehicle: String, seed: UInt64) -> Bool {
        if let holders { return holders.contains(vehicle) }
        var draw = SeededGenerator(seed: seed, label: "experts/\(name)/\(vehicle)")
        return draw.unit() < share
    }
}
