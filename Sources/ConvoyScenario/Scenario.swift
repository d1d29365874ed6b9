import ConvoyCore
import ConvoyFederated
import ConvoyReasoning
import Foundation
import Yams

/// A scheduled fault (scenario `faults:`).
public struct FaultSpec: Sendable, Equatable, Codable {
    /// Emulated seconds since the run started.
    public var at: Double
    public var node: String
    public var mode: FaultMode
    /// Seconds until recovery; nil = until `convoy recover`.
    public var duration: Double?
    /// For `degrade`: how much worse.
    public var degradation: Degradation?

    public init(at: Double, node: String, mode: FaultMode, duration: Double?, degradation: Degradation? = nil) {
        self.at = at
        self.node = node
        self.mode = mode
        self.duration = duration
        self.degradation = degradation
    }
}

/// A scenario: a map, a trace, a workload, liveness settings and faults. The format is documented
/// in the README ("Scenarios").
public struct Scenario: Sendable, Equatable, Codable {
    public var name: String
    /// Absolute paths.
    public var mapPath: String
    public var tracePath: String
    public var map: MapSpec
    /// Emulated seconds; nil = until the trace ends.
    public var duration: Double?
    /// Where the run starts in the trace (scenario `start:`); nil = at trace time 0.
    public var start: TraceStart?
    public var seed: UInt64
    public var workload: WorkloadSpec
    /// Every vehicle's on-board compute (scenario `onboard:`), if any.
    public var onboard: ComputeSpec?
    /// The vehicles' path policy (`PathPolicies`).
    public var policy: String
    /// The price of an attempt on each access path (scenario `prices:`), for the cost-aware policy.
    public var prices: PathPrices
    public var liveness: LivenessConfig
    public var faults: [FaultSpec]
    /// Federated fine-tuning of a real LLM over the fleet (scenario `fedtune:`), if any.
    public var fedtune: FedTuneConfig?
    /// Federated analytics over the fleet's trajectories (scenario `analytics:`), if any.
    public var analytics: AnalyticsConfig?
    /// Expert models vehicles carry (scenario `experts:`), for tasks with `subtasks:`.
    public var experts: [ExpertSpec] = []

    public init(name: String, mapPath: String = "", tracePath: String = "", map: MapSpec, duration: Double? = nil, start: TraceStart? = nil, seed: UInt64 = 1,
                workload: WorkloadSpec = WorkloadSpec(), onboard: ComputeSpec? = nil, policy: String = PathPolicies.defaultName,
                prices: PathPrices = PathPrices(), liveness: LivenessConfig = LivenessConfig(), faults: [FaultSpec] = [], fedtune: FedTuneConfig? = nil,
                analytics: AnalyticsConfig? = nil, experts: [ExpertSpec] = []) {
        self.analytics = analytics
        self.fedtune = fedtune
        self.experts = experts
        self.name = name
        self.mapPath = mapPath
        self.tracePath = tracePath
        self.map = map
        self.duration = duration
        self.start = start
        self.seed = seed
        self.workload = workload
        self.onboard = onboard
        self.policy = policy
        self.prices = prices
        self.liveness = liveness
        self.faults = faults
    }

    public static func load(path: String) throws -> Scenario {
        try parse(try YAMLFields.readText(path, what: "scenario"), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> Scenario {
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        func resolve(_ relative: String) -> String {
            relative.hasPrefix("/") ? relative : base.appendingPathComponent(relative).standardizedFileURL.path
        }
        var root = try YAMLFields.document(text, file: file)
        let name = try root.string("name")
        let mapPath = resolve(try root.string("map"))
        let tracePath = resolve(try root.string("trace"))
        let duration = try root.optionalDouble("duration", above: 0, max: 1e9)
        var start: TraceStart?
        if let node = root.value("start") {
            guard let text = node.string, let parsed = TraceStart(text: text) else {
                throw root.error("start", "expected `first` or a trace time in seconds, got '\(node.string ?? "a non-scalar")'", at: node)
            }
            start = parsed
        }
        let seed = UInt64(try root.int("seed", default: 1, min: 0))

        let workload = try Self.workload(try root.nested("workload"), resolve: resolve)
        let onboard = try MapSpec.compute(&root, required: false, key: "onboard")
        if onboard == nil, let split = workload.tasks.first(where: { $0.split != nil }) {
            throw root.error("workload", "task '\(split.name)' splits (split:), which runs its first layers on board: "
                             + "give the vehicles an `onboard:` compute")
        }
        let experts = try Self.experts(&root)
        for task in workload.tasks {
            if let unknown = task.subtasks.first(where: { name in !experts.contains { $0.name == name } }) {
                throw root.error("workload", "task '\(task.name)' has subtask '\(unknown)', which is not an expert of `experts:` "
                                 + "(known: \(experts.map(\.name).joined(separator: ", ")))")
            }
            if !task.subtasks.isEmpty, onboard == nil {
                throw root.error("workload", "task '\(task.name)' decomposes into experts' subtasks, which neighbours compute on board: "
                                 + "give the vehicles an `onboard:` compute")
            }
            let schemes = [task.split != nil, !task.subtasks.isEmpty, task.pipeline > 0].filter { $0 }.count
            if schemes > 1 {
                throw root.error("workload", "task '\(task.name)' combines split:, subtasks: and pipeline:: choose one")
            }
            if task.pipeline > 0, onboard == nil {
                throw root.error("workload", "task '\(task.name)' runs as a pipeline over neighbours' on-board compute: "
                                 + "give the vehicles an `onboard:` compute")
            }
        }
        var prices = PathPrices()
        if var p = try root.nested("prices") {
            for path in AccessPath.allCases {
                prices[path] = try p.double(path.rawValue, default: prices[path], min: 0)
            }
            try p.rejectUnknownKeys()
        }

        let policy = try root.optionalString("policy") ?? PathPolicies.defaultName
        guard PathPolicies.named(policy) != nil else {
            throw root.error("policy", "unknown policy '\(policy)' (known: \(PathPolicies.names.joined(separator: ", ")))")
        }

        var liveness = LivenessConfig()
        if var l = try root.nested("liveness") {
            liveness.beaconInterval = try l.double("beacon_interval", default: liveness.beaconInterval, above: 0)
            liveness.suspectAfter = try l.double("suspect_after", default: liveness.suspectAfter, above: 0)
            liveness.deadAfter = try l.double("dead_after", default: liveness.deadAfter, above: 0)
            guard liveness.deadAfter >= liveness.suspectAfter else {
                throw l.error("dead_after", "must be ≥ suspect_after (\(liveness.suspectAfter))")
            }
            try l.rejectUnknownKeys()
        }

        var faultFields: [YAMLFields] = []
        var faults: [FaultSpec] = []
        for (i, node) in try root.list("faults").enumerated() {
            var f = try YAMLFields(node, file: file, path: "faults[\(i)]")
            let modeText = try f.string("mode")
            guard let mode = FaultMode(rawValue: modeText) else {
                throw f.error("mode", "expected one of \(FaultMode.allCases.map(\.rawValue).joined(separator: ", ")), got '\(modeText)'")
            }
            let loss = try f.optionalDouble("loss", min: 0)
            let latency = try f.optionalDouble("latency_ms", min: 0)
            if mode != .degrade, loss != nil || latency != nil {
                throw f.error(loss != nil ? "loss" : "latency_ms", "only a degrade fault takes loss and latency_ms")
            }
            if let loss, loss > 1 { throw f.error("loss", "expected a probability in [0, 1], got \(loss)") }
            let degradation = mode == .degrade
                ? Degradation(loss: loss ?? Degradation.standard.loss, latency: latency.map { $0 / 1000 } ?? Degradation.standard.latency)
                : nil
            faults.append(FaultSpec(at: try f.double("at", min: 0), node: try f.string("node"), mode: mode,
                                    duration: try f.optionalDouble("for", above: 0), degradation: degradation))
            try f.rejectUnknownKeys()
            faultFields.append(f)
        }
        var fedtuneFields = try root.nested("fedtune")
        var analyticsFields = try root.nested("analytics")
        try root.rejectUnknownKeys()

        let map: MapSpec
        do {
            map = try MapSpec.load(path: mapPath)
        } catch let error as InputError where error.file == mapPath && error.line == nil && error.field == nil {
            throw root.error("map", "cannot read \(mapPath): \(error.message)")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: tracePath, isDirectory: &isDirectory) else {
            throw root.error("trace", "no such file: \(tracePath)")
        }
        guard !isDirectory.boolValue else {
            throw root.error("trace", "\(tracePath) is a directory; expected a trace file")
        }
        for (fault, fields) in zip(faults, faultFields) {
            guard let role = map.role(of: fault.node), role != .cloud else {
                throw fields.error("node", "'\(fault.node)' is not an RSU or edge server of the map \(map.name)")
            }
            if fault.mode == .backendDown, map.compute(of: fault.node)?.backend == nil {
                throw fields.error("mode", "backend-down needs a real model server: '\(fault.node)' has no `backend:` in its compute")
            }
        }
        let fedtune = try fedtuneFields.map { _ in try FedTuneConfig.parse(&fedtuneFields!, map: map) }
        let analytics = try analyticsFields.map { _ in try AnalyticsConfig.parse(&analyticsFields!, map: map, duration: duration) }
        return Scenario(name: name, mapPath: mapPath, tracePath: tracePath, map: map, duration: duration, start: start, seed: seed,
                        workload: workload, onboard: onboard, policy: policy, prices: prices, liveness: liveness,
                        faults: faults.sorted { $0.at < $1.at }, fedtune: fedtune, analytics: analytics,
                        experts: experts)
    }

    /// `experts:` — the expert models vehicles carry.
    private static func experts(_ root: inout YAMLFields) throws -> [ExpertSpec] {
        var experts: [ExpertSpec] = []
        for (i, node) in try root.list("experts").enumerated() {
            var e = try YAMLFields(node, file: root.file, path: "experts[\(i)]")
            let name = try e.string("name")
            guard !experts.contains(where: { $0.name == name }) else { throw e.error("name", "expert '\(name)' is listed twice") }
            let model = try e.string("model")
            guard ModelProfile.catalog[model] != nil else {
                throw e.error("model", "unknown model '\(model)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            let holders = try e.stringList("holders")
            let share = try e.optionalDouble("share", min: 0, max: 1)
            guard holders.isEmpty != (share == nil) else {
                throw e.error("share", "give either share (the fraction of vehicles holding it) or holders (their ids)")
            }
            try e.rejectUnknownKeys()
            experts.append(ExpertSpec(name: name, model: model, share: share ?? 0, holders: holders.isEmpty ? nil : holders))
        }
        return experts
    }

    /// `workload:` — an arrival process and a task mix, either a `tasks:` list or, for a single
    /// task, its fields directly under `workload:`.
    private static func workload(_ fields: YAMLFields?, resolve: (String) -> String) throws -> WorkloadSpec {
        var workload = WorkloadSpec()
        guard var w = fields else { return workload }
        let arrival = try w.optionalString("arrival") ?? workload.arrival.rawValue
        guard let a = WorkloadSpec.Arrival(rawValue: arrival) else {
            throw w.error("arrival", "expected \(WorkloadSpec.Arrival.allCases.map(\.rawValue).joined(separator: ", ")), got '\(arrival)'")
        }
        workload.arrival = a
        workload.meanInterval = try w.double("mean_interval", default: workload.meanInterval, above: 0)
        workload.freshness = try w.double("freshness", default: workload.freshness, above: 0)
        workload.sharingArea = try w.double("sharing_area", default: workload.sharingArea, above: 0)
        let taskNodes = try w.list("tasks")
        if taskNodes.isEmpty {
            workload.tasks = [try task(&w, name: "default", resolve: resolve)]
        } else {
            for key in ["model", "input_tokens", "output_tokens", "deadline", "payload_bytes", "result_bytes", "shareable", "prompts", "split",
                        "subtasks", "pipeline"]
            where w.node[key] != nil {
                throw w.error(key, "with a tasks: list, give \(key) per task")
            }
            var tasks: [TaskSpec] = []
            for (i, node) in taskNodes.enumerated() {
                var t = try YAMLFields(node, file: w.file, path: w.qualified("tasks[\(i)]"))
                let name = try t.string("name")
                guard !tasks.contains(where: { $0.name == name }) else { throw t.error("name", "task '\(name)' is listed twice") }
                var task = try task(&t, name: name, resolve: resolve)
                task.weight = try t.double("weight", default: 1, min: 0)
                try t.rejectUnknownKeys()
                tasks.append(task)
            }
            guard tasks.contains(where: { $0.weight > 0 }) else { throw w.error("tasks", "every task has weight 0") }
            workload.tasks = tasks
        }
        let arrivals = try w.optionalString("arrivals")
        switch (a, arrivals) {
        case (.file, nil): throw w.error("arrivals", "missing: arrival: file needs the file listing the arrivals")
        case (.file, let path?):
            workload.arrivalsPath = resolve(path)
            do {
                _ = try ArrivalFile.load(path: workload.arrivalsPath!, tasks: workload.tasks)
            } catch let error as InputError where error.line == nil {
                throw w.error("arrivals", error.message)
            }
        case (_, .some): throw w.error("arrivals", "only arrival: file takes an arrivals file")
        default: break
        }
        try w.rejectUnknownKeys()
        return workload
    }

    /// The fields of one task (under `workload:` or an item of `workload.tasks`).
    private static func task(_ f: inout YAMLFields, name: String, resolve: (String) -> String) throws -> TaskSpec {
        var task = TaskSpec(name: name)
        task.model = try f.optionalString("model") ?? task.model
        guard ModelProfile.catalog[task.model] != nil else {
            throw f.error("model", "unknown model '\(task.model)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
        }
        // Tokens and byte counts cross the wire as 32-bit fields.
        let wire = Int(UInt32.max), why = " (it crosses the wire as a 32-bit field)"
        task.inputTokens = try f.int("input_tokens", default: task.inputTokens, min: 1, max: wire, why: why)
        task.outputTokens = try f.int("output_tokens", default: task.outputTokens, min: 1, max: wire, why: why)
        task.deadline = try f.double("deadline", default: task.deadline, above: 0, max: 86_400)
        task.payloadBytes = try f.int("payload_bytes", default: task.payloadBytes, min: 0, max: wire, why: why)
        task.resultBytes = try f.int("result_bytes", default: task.resultBytes, min: 0, max: wire, why: why)
        task.shareable = try f.bool("shareable", default: task.shareable)
        task.subtasks = try f.stringList("subtasks")
        task.pipeline = try f.int("pipeline", default: 0, min: 0, max: ModelProfile.catalog[task.model]!.layers,
                                  why: " (a stage holds at least one of \(task.model)'s layers)")
        if task.pipeline == 1 { throw f.error("pipeline", "expected 0 (not split) or at least 2 stages, got 1") }
        if let node = f.value("split") {
            let layers = ModelProfile.catalog[task.model]!.layers
            if node.string == "auto" {
                task.split = .auto
            } else if let k = node.int, (0...layers).contains(k) {
                task.split = .fixed(k)
            } else {
                throw f.error("split", "expected `auto` or the layers to run on board, 0 to \(layers) (\(task.model) has \(layers)), "
                              + "got '\(node.string ?? "a non-scalar")'", at: node)
            }
        }
        if let path = try f.optionalString("prompts") {
            do {
                task.prompts = try PromptFile.load(path: resolve(path))
            } catch let error as InputError where error.line == nil {
                throw f.error("prompts", error.message)
            }
        }
        return task
    }
}
