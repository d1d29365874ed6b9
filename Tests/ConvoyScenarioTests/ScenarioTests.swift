import ConvoyCore
import ConvoyReasoning
import ConvoyScenario
import Foundation
import Testing

/// A small valid scenario next to `tinyMap`. Line numbers matter: the error tests edit single lines.
let tinyScenario = """
name: test
map: map.yaml
trace: traces/trace.csv
duration: 60
seed: 7
workload:
  arrival: periodic
  mean_interval: 1.5
  model: llama-2-13b
  input_tokens: 128
  output_tokens: 16
  deadline: 3
  payload_bytes: 1000
  result_bytes: 500
liveness:
  beacon_interval: 0.2
  suspect_after: 3
  dead_after: 5
faults:
  - { at: 20, node: rsu-2, mode: hang }
  - { at: 10, node: edge-1, mode: crash, for: 5 }
"""

@Suite struct ScenarioTests {
    /// Writes the map, a trace and `scenario` into a temporary directory and loads the scenario.
    func load(_ scenario: String, in dir: borrowing TemporaryDirectory) throws -> Scenario {
        try dir.write("map.yaml", tinyMap)
        try dir.write("traces/trace.csv", "time,id,x,y\n0,v1,0,0\n")
        return try Scenario.load(path: try dir.write("scenario.yaml", scenario))
    }

    @Test func bundledDefaultScenarioLoads() throws {
        let path = repositoryRoot.appendingPathComponent("maps/default.yaml").path
        let scenario = try Scenario.load(path: path)
        #expect(scenario.name == "monaco-default")
        #expect(scenario.mapPath == repositoryRoot.appendingPathComponent("maps/monaco.yaml").standardizedFileURL.path)
        #expect(scenario.tracePath == repositoryRoot.appendingPathComponent("traces/monaco.fcd.xml").standardizedFileURL.path)
        #expect(!scenario.tracePath.contains(".."))
        #expect(scenario.map.rsus.count == 10 && scenario.map.edges.count == 3)
        #expect(scenario.map.rsus.allSatisfy { $0.edge != nil })
        #expect(scenario.faults == [
            FaultSpec(at: 30, node: "rsu-9", mode: .crash, duration: 20),
            FaultSpec(at: 70, node: "rsu-6", mode: .hang, duration: 10),
        ])
        #expect(scenario.duration == 120 && scenario.seed == 1)
        #expect(scenario.workload.arrival == .poisson && scenario.workload.meanInterval == 2)
        #expect(!scenario.workload.tasks.isEmpty)
        #expect(scenario.workload.tasks.allSatisfy { ModelProfile.catalog[$0.model] != nil })
        #expect(scenario.liveness == LivenessConfig(beaconInterval: 0.1, suspectAfter: 2, deadAfter: 3))
        for fault in scenario.faults { #expect(scenario.map.role(of: fault.node) == .rsu) }
    }

    @Test func tinyScenarioLoadsWithPathsRelativeToItsFile() throws {
        let dir = try TemporaryDirectory()
        let scenario = try load(tinyScenario, in: dir)
        #expect(scenario.name == "test")
        #expect(scenario.mapPath == dir.path("map.yaml"))
        #expect(scenario.tracePath == dir.path("traces/trace.csv"))
        #expect(scenario.map.name == "tiny" && scenario.map.rsus.count == 2)
        #expect(scenario.duration == 60 && scenario.seed == 7)
        #expect(scenario.workload == WorkloadSpec(arrival: .periodic, meanInterval: 1.5, tasks: [
            TaskSpec(name: "default", model: "llama-2-13b", inputTokens: 128, outputTokens: 16, deadline: 3, payloadBytes: 1000,
                     resultBytes: 500),
        ]))
        #expect(scenario.onboard == nil && scenario.prices == PathPrices() && scenario.policy == "best-rate")
        #expect(scenario.liveness == LivenessConfig(beaconInterval: 0.2, suspectAfter: 3, deadAfter: 5))
        // Sorted by time; `for` absent = until recovered by hand.
        #expect(scenario.faults == [
            FaultSpec(at: 10, node: "edge-1", mode: .crash, duration: 5),
            FaultSpec(at: 20, node: "rsu-2", mode: .hang, duration: nil),
        ])
    }

    @Test func optionalSectionsTakeDefaults() throws {
        let dir = try TemporaryDirectory()
        let scenario = try load("name: minimal\nmap: map.yaml\ntrace: traces/trace.csv\n", in: dir)
        #expect(scenario.duration == nil && scenario.seed == 1 && scenario.faults.isEmpty)
        #expect(scenario.workload == WorkloadSpec())
        #expect(scenario.liveness == LivenessConfig())
    }

    @Test func absolutePathsAreKept() throws {
        let dir = try TemporaryDirectory()
        let other = try TemporaryDirectory()
        let map = try other.write("elsewhere/map.yaml", tinyMap)
        let trace = try other.write("t.xml", "<fcd-export/>")
        let scenario = try load("name: abs\nmap: \(map)\ntrace: \(trace)\n", in: dir)
        #expect(scenario.mapPath == map && scenario.tracePath == trace)
    }

    @Test func faultOnAnUnknownNodeOrTheCloud() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path("scenario.yaml")
        expectInputError(file: file, line: 20, field: "faults[0].node", message: "'rsu-7' is not an RSU or edge server of the map tiny") {
            _ = try load(edited(tinyScenario, [20: "  - { at: 20, node: rsu-7, mode: hang }"]), in: dir)
        }
        expectInputError(file: file, line: 21, field: "faults[1].node", message: "'cloud' is not an RSU or edge server") {
            _ = try load(edited(tinyScenario, [21: "  - { at: 10, node: cloud, mode: crash }"]), in: dir)
        }
    }

    @Test func faultModeMustBeAKnownMode() throws {
        let dir = try TemporaryDirectory()
        let error = expectInputError(line: 20, field: "faults[0].mode", message: "expected one of crash, hang, partition, degrade, backend-down, got 'freeze'") {
            _ = try load(edited(tinyScenario, [20: "  - { at: 20, node: rsu-2, mode: freeze }"]), in: dir)
        }
        #expect(error?.file == dir.path("scenario.yaml"))
        expectInputError(line: 21, field: "faults[1].at", message: "≥ 0") {
            _ = try load(edited(tinyScenario, [21: "  - { at: -1, node: edge-1, mode: crash }"]), in: dir)
        }
        expectInputError(line: 21, field: "faults[1].for", message: "> 0") {
            _ = try load(edited(tinyScenario, [21: "  - { at: 1, node: edge-1, mode: crash, for: 0 }"]), in: dir)
        }
        expectInputError(line: 21, field: "faults[1].mdoe", message: "unknown key") {
            _ = try load(edited(tinyScenario, [21: "  - { at: 1, node: edge-1, mode: crash, mdoe: hang }"]), in: dir)
        }
    }

    @Test func unknownWorkloadModelOrArrival() throws {
        let dir = try TemporaryDirectory()
        let error = expectInputError(line: 9, field: "workload.model", message: "unknown model 'gpt-5'") {
            _ = try load(edited(tinyScenario, [9: "  model: gpt-5"]), in: dir)
        }
        #expect(error?.message.contains("llama-3-8b") == true, "the message lists the known models")
        expectInputError(line: 7, field: "workload.arrival", message: "expected poisson, periodic, file, got 'bursty'") {
            _ = try load(edited(tinyScenario, [7: "  arrival: bursty"]), in: dir)
        }
        expectInputError(line: 10, field: "workload.input_tokens", message: "≥ 1") {
            _ = try load(edited(tinyScenario, [10: "  input_tokens: 0"]), in: dir)
        }
        expectInputError(line: 12, field: "workload.deadline", message: "> 0") {
            _ = try load(edited(tinyScenario, [12: "  deadline: 0"]), in: dir)
        }
    }

    @Test func splitTasks() throws {
        let dir = try TemporaryDirectory()
        let onboard = "onboard: { device: jetson-agx-orin, slots: 1, queue: 2 }\n"
        #expect(try load(onboard + edited(tinyScenario, [14: "  result_bytes: 500\n  split: auto"]), in: dir).workload.tasks[0].split == .auto)
        #expect(try load(onboard + edited(tinyScenario, [14: "  result_bytes: 500\n  split: 12"]), in: dir).workload.tasks[0].split
            == .fixed(12))
        // llama-2-13b has 40 layers.
        expectInputError(line: 16, field: "workload.split", message: "expected `auto` or the layers to run on board, 0 to 40") {
            _ = try load(onboard + edited(tinyScenario, [14: "  result_bytes: 500\n  split: 41"]), in: dir)
        }
        expectInputError(line: 7, field: "workload", message: "give the vehicles an `onboard:` compute") {
            _ = try load(edited(tinyScenario, [14: "  result_bytes: 500\n  split: 8"]), in: dir)
        }
    }

    @Test func analyticsSection() throws {
        let dir = try TemporaryDirectory()
        let scenario = try load(tinyScenario + "\nanalytics: { aggregator: edge-1, until: 30, cell_size: 150, epsilon: 0.5 }\n", in: dir)
        let analytics = try #require(scenario.analytics)
        #expect(analytics.aggregator == "edge-1" && analytics.query.window == 0..<30 && analytics.query.cellSize == 150)
        #expect(analytics.epsilon == 0.5 && analytics.grace == 5)
        // The window ends with the run by default.
        #expect(try load(tinyScenario + "\nanalytics: { aggregator: cloud }\n", in: dir).analytics?.query.window == 0..<60)
        expectInputError(line: 22, field: "analytics.aggregator", message: "'veh-1' is not an RSU, edge server or the cloud") {
            _ = try load(tinyScenario + "\nanalytics: { aggregator: veh-1 }\n", in: dir)
        }
        expectInputError(line: 22, field: "analytics.epsilon", message: "> 0") {
            _ = try load(tinyScenario + "\nanalytics: { aggregator: cloud, epsilon: 0 }\n", in: dir)
        }
        expectInputError(line: 22, field: "analytics.until", message: "> 20") {
            _ = try load(tinyScenario + "\nanalytics: { aggregator: cloud, from: 20, until: 10 }\n", in: dir)
        }
    }

    @Test func taskMixOnboardComputeAndPrices() throws {
        let dir = try TemporaryDirectory()
        let scenario = try load("""
            name: mix
            map: map.yaml
            trace: traces/trace.csv
            policy: cost-aware
            onboard: { device: jetson-agx-orin, slots: 2, queue: 1 }
            prices: { rsu: 2, macro: 5.5 }
            workload:
              arrival: poisson
              mean_interval: 3
              freshness: 4
              sharing_area: 150
              tasks:
                - { name: hazard, weight: 3, model: llama-3-8b, output_tokens: 8, shareable: true }
                - { name: plan, model: llama-2-13b, deadline: 8, payload_bytes: 50000, result_bytes: 100 }
            """, in: dir)
        #expect(scenario.policy == "cost-aware")
        #expect(scenario.onboard == ComputeSpec(device: "jetson-agx-orin", slots: 2, queue: 1))
        var prices = PathPrices()
        prices.rsu = 2
        prices.macro = 5.5
        #expect(scenario.prices == prices && scenario.prices[.v2v] == 0.5 && scenario.prices[.onboard] == 0)
        #expect(scenario.workload.freshness == 4 && scenario.workload.sharingArea == 150)
        #expect(scenario.workload.tasks == [
            TaskSpec(name: "hazard", weight: 3, model: "llama-3-8b", outputTokens: 8, shareable: true),
            TaskSpec(name: "plan", model: "llama-2-13b", deadline: 8, payloadBytes: 50_000, resultBytes: 100),
        ])
        #expect(scenario.workload.longestDeadline == 8 && scenario.workload.drainTime == 5)
    }

    @Test func taskMixErrorsNameTheTask() throws {
        let dir = try TemporaryDirectory()
        let head = "name: mix\nmap: map.yaml\ntrace: traces/trace.csv\nworkload:\n  tasks:\n"
        expectInputError(line: 6, field: "workload.tasks[0].model", message: "unknown model 'gpt-5'") {
            _ = try load(head + "    - { name: a, model: gpt-5 }\n", in: dir)
        }
        expectInputError(line: 7, field: "workload.tasks[1].name", message: "task 'a' is listed twice") {
            _ = try load(head + "    - { name: a }\n    - { name: a }\n", in: dir)
        }
        expectInputError(line: 6, field: "workload.tasks[0].shareable", message: "expected true or false") {
            _ = try load(head + "    - { name: a, shareable: maybe }\n", in: dir)
        }
        expectInputError(line: 6, field: "workload.tasks[0].weight", message: "≥ 0") {
            _ = try load(head + "    - { name: a, weight: -1 }\n", in: dir)
        }
        expectInputError(line: 6, field: "workload.tasks", message: "every task has weight 0") {
            _ = try load(head + "    - { name: a, weight: 0 }\n", in: dir)
        }
        expectInputError(line: 7, field: "workload.model", message: "give model per task") {
            _ = try load(head + "    - { name: a }\n  model: llama-3-8b\n", in: dir)
        }
        expectInputError(line: 4, field: "onboard.device", message: "unknown device 'tpu'") {
            _ = try load("name: x\nmap: map.yaml\ntrace: traces/trace.csv\nonboard: { device: tpu }\n", in: dir)
        }
        expectInputError(line: 4, field: "prices.rsuu", message: "unknown key") {
            _ = try load("name: x\nmap: map.yaml\ntrace: traces/trace.csv\nprices: { rsuu: 1 }\n", in: dir)
        }
        expectInputError(line: 4, field: "policy", message: "unknown policy 'fastest'") {
            _ = try load("name: x\nmap: map.yaml\ntrace: traces/trace.csv\npolicy: fastest\n", in: dir)
        }
    }

    @Test func arrivalsFromAFile() throws {
        let dir = try TemporaryDirectory()
        try dir.write("arrivals.csv", "# listed arrivals\ntime,vehicle,task\n2.5,v1,b\n1,v1,\n0.5,v2,a\n")
        let text = """
            name: listed
            map: map.yaml
            trace: traces/trace.csv
            workload:
              arrival: file
              arrivals: arrivals.csv
              tasks:
                - { name: a }
                - { name: b, model: llama-2-13b }
            """
        let scenario = try load(text, in: dir)
        #expect(scenario.workload.arrival == .file && scenario.workload.arrivalsPath == dir.path("arrivals.csv"))
        let file = try ArrivalFile.load(path: dir.path("arrivals.csv"), tasks: scenario.workload.tasks)
        #expect(file.count == 3)
        #expect(file.arrivals["v1"] == [.init(time: 1, task: nil), .init(time: 2.5, task: "b")])
        #expect(file.arrivals["v2"] == [.init(time: 0.5, task: "a")])
        try file.checkVehicles(in: ["v1", "v2", "v3"], trace: "t.csv")
        expectInputError(file: dir.path("arrivals.csv"), line: 3, field: "vehicle", message: "vehicle 'v1' is not in the trace t.csv") {
            try file.checkVehicles(in: ["v2"], trace: "t.csv")
        }
        // Bad lines are reported with the arrivals file's own line numbers.
        try dir.write("arrivals.csv", "time,vehicle,task\n1,v1,a\nsoon,v1,a\n")
        expectInputError(file: dir.path("arrivals.csv"), line: 3, field: "time", message: "expected seconds ≥ 0, got 'soon'") {
            _ = try load(text, in: dir)
        }
        try dir.write("arrivals.csv", "time,vehicle,task\n1,v1,c\n")
        expectInputError(line: 2, field: "task", message: "unknown task 'c' (tasks: a, b)") { _ = try load(text, in: dir) }
        try dir.write("arrivals.csv", "time,car\n")
        expectInputError(line: 1, field: "car", message: "unknown column") { _ = try load(text, in: dir) }
        try dir.write("arrivals.csv", "time,task\n")
        expectInputError(line: 1, field: "vehicle", message: "missing column") { _ = try load(text, in: dir) }
        try dir.write("arrivals.csv", "time,vehicle\n1,v1,extra\n")
        expectInputError(line: 2, field: nil, message: "expected 2 fields, got 3") { _ = try load(text, in: dir) }
        try dir.write("arrivals.csv", "")
        expectInputError(line: 1, field: nil, message: "empty") { _ = try load(text, in: dir) }
        expectInputError(line: 6, field: "workload.arrivals", message: "cannot open the file for reading: No such file") {
            _ = try load(text.replacingOccurrences(of: "arrivals.csv", with: "missing.csv"), in: dir)
        }
        expectInputError(line: 5, field: "workload.arrivals", message: "missing: arrival: file needs") {
            _ = try load(text.replacingOccurrences(of: "  arrivals: arrivals.csv\n", with: ""), in: dir)
        }
        expectInputError(line: 6, field: "workload.arrivals", message: "only arrival: file takes") {
            _ = try load(text.replacingOccurrences(of: "arrival: file", with: "arrival: poisson"), in: dir)
        }
    }

    @Test func deadAfterMustNotBeBelowSuspectAfter() throws {
        let dir = try TemporaryDirectory()
        expectInputError(line: 18, field: "liveness.dead_after", message: "must be ≥ suspect_after") {
            _ = try load(edited(tinyScenario, [18: "  dead_after: 2"]), in: dir)
        }
        // Equal is allowed.
        let scenario = try load(edited(tinyScenario, [18: "  dead_after: 3"]), in: dir)
        #expect(scenario.liveness.deadAfter == 3)
        // Against the default suspect_after (2).
        expectInputError(line: 16, field: "liveness.dead_after", message: "must be ≥ suspect_after") {
            _ = try load(edited(tinyScenario, [16: "  dead_after: 1.5", 17: "", 18: ""]), in: dir)
        }
    }

    @Test func missingTraceOrMapFile() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path("scenario.yaml")
        let trace = expectInputError(file: file, line: 3, field: "trace", message: "no such file") {
            _ = try load(edited(tinyScenario, [3: "trace: traces/missing.csv"]), in: dir)
        }
        #expect(trace?.message.contains(dir.path("traces/missing.csv")) == true)
        expectInputError(file: file, line: 3, field: "trace", message: "is a directory; expected a trace file") {
            _ = try load(edited(tinyScenario, [3: "trace: traces"]), in: dir)
        }
        expectInputError(file: file, line: 2, field: "map", message: "cannot read") {
            _ = try load(edited(tinyScenario, [2: "map: maps/missing.yaml"]), in: dir)
        }
    }

    @Test func errorsInTheMapNameTheMapFile() throws {
        let dir = try TemporaryDirectory()
        try dir.write("traces/trace.csv", "x")
        try dir.write("map.yaml", edited(tinyMap, [13: "    x: ten"]))
        let path = try dir.write("scenario.yaml", tinyScenario)
        expectInputError(file: dir.path("map.yaml"), line: 13, field: "rsus[0].x", message: "expected a number") {
            _ = try Scenario.load(path: path)
        }
    }

    @Test func scenarioFieldErrors() throws {
        let dir = try TemporaryDirectory()
        expectInputError(line: 4, field: "duration", message: "> 0") {
            _ = try load(edited(tinyScenario, [4: "duration: -3"]), in: dir)
        }
        expectInputError(line: 5, field: "seed", message: "expected an integer") {
            _ = try load(edited(tinyScenario, [5: "seed: lots"]), in: dir)
        }
        expectInputError(line: 5, field: "seeds", message: "unknown key") {
            _ = try load(edited(tinyScenario, [5: "seeds: 7"]), in: dir)
        }
        expectInputError(line: 1, field: "map", message: "missing (required)") {
            _ = try load(edited(tinyScenario, [2: "#"]), in: dir)
        }
        expectInputError(line: 19, field: "faults", message: "expected a list") {
            _ = try load(edited(tinyScenario, [19: "faults: none", 20: "", 21: ""]), in: dir)
        }
        expectInputError(line: 1, field: nil, message: "the file is empty") { _ = try Scenario.parse("", file: "s.yaml") }
    }

    @Test func unreadableScenarioFile() {
        expectInputError(file: "/nonexistent/convoy/s.yaml", line: nil, field: nil, message: "no such file") {
            _ = try Scenario.load(path: "/nonexistent/convoy/s.yaml")
        }
    }
}

@Suite("Partition and degrade faults in a scenario")
struct FaultModeParsingTests {
    private func scenario(_ faults: String) throws -> Scenario {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-faultmodes-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try """
        name: m
        cloud: { id: cloud, compute: { device: a100-80gb } }
        rsus:
          - { id: rsu-1, x: 0, y: 0, radius: 100, compute: { device: rtx-4090 } }
        """.write(to: dir.appendingPathComponent("map.yaml"), atomically: true, encoding: .utf8)
        try "time,id,x,y\n0,v,0,0\n1,v,1,0\n".write(to: dir.appendingPathComponent("t.csv"), atomically: true, encoding: .utf8)
        let text = "name: s\nmap: map.yaml\ntrace: t.csv\nfaults:\n" + faults
        let path = dir.appendingPathComponent("s.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try Scenario.load(path: path)
    }

    @Test func degradeTakesLossAndLatencyWithDefaults() throws {
        let s = try scenario("""
          - { at: 1, node: rsu-1, mode: degrade, loss: 0.3, latency_ms: 40 }
          - { at: 2, node: rsu-1, mode: degrade }
          - { at: 3, node: rsu-1, mode: partition, for: 2 }
        """)
        #expect(s.faults[0].degradation == Degradation(loss: 0.3, latency: 0.04))
        #expect(s.faults[1].degradation == .standard)
        #expect(s.faults[2].mode == .partition && s.faults[2].degradation == nil)
    }

    @Test func lossOnAnotherModeIsAnError() {
        #expect {
            try scenario("  - { at: 1, node: rsu-1, mode: crash, loss: 0.3 }\n")
        } throws: { error in
            (error as? InputError)?.field == "faults[0].loss" && (error as? InputError)?.line == 5
        }
    }
}

@Suite("Scenario policy")
struct ScenarioPolicyTests {
    @Test func anUnknownPolicyListsTheKnownOnes() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOfFile: root.appendingPathComponent("maps/default.yaml").path, encoding: .utf8)
        let file = root.appendingPathComponent("maps/x.yaml").path
        #expect(try Scenario.parse(text, file: file).policy == "best-rate")
        let withPolicy = text.replacingOccurrences(of: "policy: best-rate", with: "policy: nearest-rsu")
        #expect(try Scenario.parse(withPolicy, file: file).policy == "nearest-rsu")
        let bad = text.replacingOccurrences(of: "policy: best-rate", with: "policy: psychic")
        #expect {
            try Scenario.parse(bad, file: file)
        } throws: { error in
            let e = error as? InputError
            return e?.field == "policy" && e?.message.contains("least-expected-latency") == true
        }
    }
}
