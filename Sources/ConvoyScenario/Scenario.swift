import ConvoyCore
import ConvoyReasoning
import Foundation
import Yams

public enum FaultMode: String, Sendable, Codable, CaseIterable {
    /// SIGKILL; restarted (new incarnation) after the duration.
    case crash
    /// SIGSTOP, then SIGCONT after the duration.
    case hang
    /// The node drops everything it would send or receive (its records still reach the launcher).
    case partition
    /// Extra loss and latency on everything the node sends or receives.
    case degrade
}

/// How a degraded node's links get worse (scenario `loss:` and `latency_ms:` of a degrade fault).
public struct Degradation: Sendable, Equatable, Codable {
    /// Probability that a message is lost, on top of the link model.
    public var loss: Double
    /// Seconds added to every message's delivery.
    public var latency: Double

    public init(loss: Double, latency: Double) {
        self.loss = loss
        self.latency = latency
    }

    /// Defaults for `degrade` without parameters: 20 % loss, 50 ms extra latency.
    public static let standard = Degradation(loss: 0.2, latency: 0.05)
}

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
    public var seed: UInt64
    public var workload: WorkloadSpec
    /// The vehicles' path policy (`PathPolicies`).
    public var policy: String
    public var liveness: LivenessConfig
    public var faults: [FaultSpec]

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
        let duration = try root.optionalDouble("duration", above: 0)
        let seed = UInt64(try root.int("seed", default: 1, min: 0))

        var workload = WorkloadSpec()
        if var w = try root.nested("workload") {
            let arrival = try w.optionalString("arrival") ?? workload.arrival.rawValue
            guard let a = WorkloadSpec.Arrival(rawValue: arrival) else {
                throw w.error("arrival", "expected poisson or periodic, got '\(arrival)'")
            }
            workload.arrival = a
            workload.meanInterval = try w.double("mean_interval", default: workload.meanInterval, above: 0)
            workload.model = try w.optionalString("model") ?? workload.model
            guard ModelProfile.catalog[workload.model] != nil else {
                throw w.error("model", "unknown model '\(workload.model)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            workload.inputTokens = try w.int("input_tokens", default: workload.inputTokens, min: 1)
            workload.outputTokens = try w.int("output_tokens", default: workload.outputTokens, min: 1)
            workload.deadline = try w.double("deadline", default: workload.deadline, above: 0)
            workload.payloadBytes = try w.int("payload_bytes", default: workload.payloadBytes, min: 0)
            workload.resultBytes = try w.int("result_bytes", default: workload.resultBytes, min: 0)
            try w.rejectUnknownKeys()
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
        try root.rejectUnknownKeys()

        let map: MapSpec
        do {
            map = try MapSpec.load(path: mapPath)
        } catch let error as InputError where error.file == mapPath && error.line == nil && error.message.hasPrefix("cannot read") {
            throw root.error("map", "cannot read \(mapPath)")
        }
        guard FileManager.default.fileExists(atPath: tracePath) else {
            throw root.error("trace", "no such file: \(tracePath)")
        }
        for (fault, fields) in zip(faults, faultFields) {
            guard let role = map.role(of: fault.node), role != .cloud else {
                throw fields.error("node", "'\(fault.node)' is not an RSU or edge server of the map \(map.name)")
            }
        }
        return Scenario(name: name, mapPath: mapPath, tracePath: tracePath, map: map, duration: duration, seed: seed,
                        workload: workload, policy: policy, liveness: liveness, faults: faults.sorted { $0.at < $1.at })
    }
}
