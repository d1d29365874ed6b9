import ConvoyCore
import ConvoyMobility
import ConvoyWire
import Foundation

/// Valid inputs for each harness, made by the code that writes them (envelopes, payloads, JSON,
/// trajectory files, trace indexes) or taken from the repository (trace fixtures, bundled maps).
/// `tools/fuzz seed` writes them into `Tests/FuzzCorpus/<harness>/seed-*`; the replay tests check
/// that every one of them is accepted, except those named `seed-refused-*` (valid files that the
/// decoder refuses by design, kept because they reach deep into it), which must be refused.
public enum FuzzSeeds {
    /// (file name, bytes) for `harness`.
    public static func seeds(for harness: FuzzHarness) -> [(name: String, bytes: [UInt8])] {
        switch harness {
        case .envelope: return named(envelopes.map { $0.encoded() })
        case .beacon: return named(beacons.map { $0.encoded() })
        case .v2vBeacon: return named(v2vBeacons.map { $0.encoded() })
        case .request: return named(requests.map { $0.encoded() })
        case .reply: return named(replies.map { $0.encoded() })
        case .cancel: return named(cancels.map { $0.encoded() })
        case .sharedResult: return named(sharedResults.map { $0.encoded() })
        case .control:
            // The example of PROTOCOL.md, then what `convoy fail/recover` sends.
            let documented = #"{"action": "fail", "node": "rsu-3", "mode": "degrade", "duration": 10.0, "loss": 0.2, "latency": 0.05}"#
            return named([Array(documented.utf8)] + controls.map(json))
        case .controlReply: return named(controlReplies.map(json))
        case .record: return named(records.map(json))
        case .traceCSV:
            return fixtures(["plain.csv", "fcd.csv", "fcd_geo.csv"])
                + named([text("time,id,lon,lat,speed,angle\n0,a,7.42,43.73,1,0\n1,a,7.4201,43.7301,1,0\n")], prefix: "seed-lonlat")
        case .traceFCD:
            return fixtures(["fcd_minimal.xml", "fcd_ids.xml", "fcd_xy.xml", "fcd_geo.xml", "fcd_utm.xml",
                             "fcd_geo_z_monaco.xml", "fcd_extra.xml", "fcd_xy.xml.gz"])
        case .traceNS2: return fixtures(["ns2mobility.tcl"])
        case .traceIndex: return traceIndexes()
        case .trajectory: return named(trajectories.map { Array(TrajectoryFile.encode($0)) })
        case .sumoNet:
            // grid5x5.net.xml is 124 KB; the reader stops at <location>, so its head is enough (a
            // network without a projection: refused, but it reaches the end of the reader).
            var seeds = fixtures(["acosta_location.net.xml"])
            if let grid = fixture("grid5x5.net.xml"), let text = String(validating: grid, as: UTF8.self),
               let location = text.range(of: "<location ") {
                let end = text[location.upperBound...].range(of: "/>")!.upperBound
                seeds.append(("seed-refused-grid5x5-head.net.xml", Array((text[..<end] + "\n</net>\n").utf8)))
            }
            return seeds
        case .map:
            return named([text(tinyMap), text(fullMap)]) + repository(["maps/monaco.yaml"])
        case .scenario:
            return named([text(tinyScenario), text(fileArrivalsScenario)]) + repository(["maps/default.yaml"])
        case .prompts:
            return named([text("{\"prompt\": \"Is the road clear?\"}\n\"A bare string\"\n"),
                          text("id,prompt\r\n1,\"Quoted, \"\"with\"\" quotes\"\r\n")]) + repository(["maps/prompts/road-questions.jsonl"])
        case .arrivals:
            return named([text("# time (emulated s), vehicle id of the trace, task (empty: drawn by weight)\ntime,vehicle,task\n12.5,veh17,scene-caption\n13.0,veh4,\n"),
                          text("vehicle,time\nveh1,0.5\nveh2,1e2\n")])
        }
    }

    // MARK: - Wire

    static let beacons = [
        Beacon(role: .rsu, activeVehicles: 12, queued: 3, busySlots: 1, slots: 1),
        Beacon(role: .edge, queued: 0, busySlots: 8, slots: 8),
        Beacon(role: .cloud, slots: 8),
        Beacon(role: .vehicle),
    ]
    static let v2vBeacons = [
        V2VBeacon(speed: 13.87, heading: 110.19, freeSlots: 1, uplinkRate: 42e6),
        V2VBeacon(speed: 0, heading: 0),
    ]
    static let requests = [
        InferenceRequest(requestID: "veh12/7", attempt: 1, vehicleID: "veh12", model: "llama-3-8b", inputTokens: 256,
                         outputTokens: 32, payloadBytes: 20_000, resultBytes: 2_000, deadline: 35.25),
        InferenceRequest(requestID: "veh3/1", attempt: 2, vehicleID: "veh3", model: "llama-2-70b", inputTokens: 512,
                         outputTokens: 64, payloadBytes: 8_000, resultBytes: 4_000, deadline: 1e3, route: ["rsu-3", "edge-1"]),
        InferenceRequest(requestID: "veh5/2", attempt: 1, vehicleID: "veh5", model: "smollm2-135m", inputTokens: 48, outputTokens: 24,
                         payloadBytes: 2_000, resultBytes: 200, deadline: 40, prompt: "Is the road clear? \"Yes\", ünïcode 🚗\n"),
    ]
    static let replies = [
        InferenceReply(requestID: "veh12/7", attempt: 1, status: .completed, servedBy: "edge-1", route: ["rsu-3", "edge-1"],
                       queueWait: 0.125, computeTime: 1.5, resultBytes: 2_000),
        InferenceReply(requestID: "veh12/8", attempt: 2, status: .rejected, servedBy: "rsu-3", route: ["rsu-3"], detail: "queue full"),
        InferenceReply(requestID: "veh4/1", attempt: 1, status: .failed, servedBy: "cloud", route: [], detail: "unknown model 'gpt'"),
        InferenceReply(requestID: "veh5/2", attempt: 1, status: .completed, servedBy: "edge-1", route: ["rsu-1", "edge-1"],
                       queueWait: 0.01, computeTime: 0.4, resultBytes: 10, answer: "Yes, it is."),
    ]
    static let cancels = [InferenceCancel(requestID: "veh12/7", attempt: 1), InferenceCancel(requestID: "veh3/99", attempt: 65_535)]
    static let sharedResults = [
        SharedResult(requestID: "veh12/7", key: "scene-caption@4,-3", computedAt: 41.5, servedBy: "edge-1", resultBytes: 2_000),
        SharedResult(requestID: "veh5/2", key: "road-question@0,0", computedAt: 3, servedBy: "edge-1", resultBytes: 11, answer: "Yes, it is."),
    ]

    static var envelopes: [Envelope] {
        let at = Position(x: 846.6, y: 1036.2)
        var list = [
            Envelope(kind: .beacon, sender: "rsu-3", incarnation: 1, sequence: 1, sentAt: 0.1, position: at, payload: beacons[0].encoded()),
            Envelope(kind: .v2vBeacon, sender: "veh12", incarnation: 0, sequence: 44, sentAt: 12.000_001, position: at,
                     payload: v2vBeacons[0].encoded()),
            Envelope(kind: .request, sender: "veh12", incarnation: 0, sequence: 45, sentAt: 30.25, position: at,
                     deliverAt: 30.262_5, payload: requests[0].encoded()),
            Envelope(kind: .request, sender: "edge-1", incarnation: 2, sequence: 9, sentAt: 31, payload: requests[1].encoded()),
            Envelope(kind: .reply, sender: "edge-1", incarnation: 2, sequence: 10, sentAt: 32.5, deliverAt: 32.502, payload: replies[0].encoded()),
            Envelope(kind: .cancel, sender: "veh12", incarnation: 0, sequence: 46, sentAt: 33, payload: cancels[0].encoded()),
            Envelope(kind: .sharedResult, sender: "veh12", incarnation: 0, sequence: 47, sentAt: 41.5, position: at,
                     payload: sharedResults[0].encoded()),
        ]
        list.append(Envelope(kind: .record, sender: "veh12", incarnation: 0, sequence: 48, sentAt: 42, payload: json(records[0])))
        list.append(Envelope(kind: .control, sender: "convoy-fail", incarnation: 0, sequence: 1, sentAt: 0, payload: json(controls[0])))
        list.append(Envelope(kind: .controlReply, sender: "launcher", incarnation: 0, sequence: 1, sentAt: 0,
                             payload: json(controlReplies[0])))
        return list
    }

    // MARK: - JSON

    static let controls = [
        ControlCommand(action: .fail, node: "rsu-3", mode: .crash, duration: 20),
        ControlCommand(action: .fail, node: "edge-2", mode: .degrade, duration: 10, loss: 0.3, latency: 0.08),
        ControlCommand(action: .fail, node: "rsu-6", mode: .partition),
        ControlCommand(action: .recover, node: "rsu-3"),
    ]
    static let controlReplies = [ControlReply(ok: true, message: "rsu-3 crashed"), ControlReply(ok: false, message: "no node 'x'")]
    static let records: [RecordBatch] = [
        RecordBatch(
            requests: [RequestRecord(requestID: "veh12/7", vehicleID: "veh12", createdAt: 30.25, deadlineAt: 35.25, model: "llama-3-8b",
                                     inputTokens: 256, outputTokens: 32, payloadBytes: 20_000, status: .completed, finishedAt: 32.6,
                                     servedBy: "edge-1", path: "rsu", attempts: 1, latencyMs: 2_350, queueWaitMs: 125,
                                     computeMs: 1_500, networkMs: 725, deadlineMet: true)],
            attempts: [AttemptRecord(requestID: "veh12/7", attempt: 1, path: "rsu", target: "rsu-3", sentAt: 30.25, endedAt: 32.6,
                                     outcome: "replied")],
            detections: [DetectionRecord(observer: "veh12", peer: "rsu-3", state: "dead", at: 50.5)],
            counters: [CounterRecord(nodeID: "veh12", name: "frames_truncated", value: 2)],
            linkStats: [LinkStatRecord(nodeID: "veh12", link: "cellular", kind: "request", sent: 10, delivered: 9, lost: 1)],
            linkSamples: [LinkSampleRecord(nodeID: "veh12", link: "v2v", kind: "v2v_beacon", sentAt: 1, modelledAt: 1.001, actualAt: 1.0012)],
            handovers: [HandoverRecord(vehicleID: "veh12", at: 20, event: "handover", fromCell: "rsu-2", toCell: "rsu-3", x: 846.6, y: 1036.2)],
            outputs: [OutputRecord(requestID: "veh5/2", servedBy: "edge-1", model: "smollm2-135m", prompt: "Is the road clear?",
                                   answer: "Yes.", promptTokens: 9, completionTokens: 3, ttftMs: 150, wallMs: 220, decodeTokensPerS: 70,
                                   startedAt: 3, computeMs: 220, lateMs: 0, failure: nil)]),
        RecordBatch(requests: [RequestRecord(requestID: "veh1/1", vehicleID: "veh1", createdAt: 0, deadlineAt: 5, model: "llama-3-8b-q4",
                                             inputTokens: 128, outputTokens: 16, payloadBytes: 30_000)]),
        RecordBatch(),
    ]

    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array(try! encoder.encode(value))
    }

    // MARK: - Files

    static let trajectories = [
        Trajectory(vehicleID: "veh12", samples: [
            TraceSample(time: 0, position: Position(x: 0, y: 0), speed: 10, angle: 90),
            TraceSample(time: 1, position: Position(x: 10, y: 0)),
            TraceSample(time: 2.5, position: Position(x: 25, y: 1), speed: 10, angle: 88),
        ]),
        Trajectory(vehicleID: "", samples: [], maxGap: 3),
    ]

    /// Indexes of small fixtures, written by `TraceIndex.write`.
    static func traceIndexes() -> [(name: String, bytes: [UInt8])] {
        let scratch = FuzzScratch()
        defer { scratch.remove() }
        var seeds: [(name: String, bytes: [UInt8])] = []
        for name in ["plain.csv", "fcd_minimal.xml"] {
            let path = scratch.directory + "/seed.index"
            guard let trace = try? Trace.load(path: fixturePath(name)), (try? TraceIndex.write(trace, to: path)) != nil,
                  let bytes = FileManager.default.contents(atPath: path) else { continue }
            seeds.append(("seed-\(name).index", Array(bytes)))
        }
        return seeds
    }

    static func fixturePath(_ name: String) -> String {
        FuzzScratch.repositoryRoot.appendingPathComponent("Tests/ConvoyMobilityTests/Fixtures/" + name).path
    }

    static func fixture(_ name: String) -> [UInt8]? {
        FileManager.default.contents(atPath: fixturePath(name)).map { Array($0) }
    }

    static func fixtures(_ names: [String]) -> [(name: String, bytes: [UInt8])] {
        names.compactMap { name in fixture(name).map { ("seed-" + name, $0) } }
    }

    static func repository(_ paths: [String]) -> [(name: String, bytes: [UInt8])] {
        paths.compactMap { path in
            FileManager.default.contents(atPath: FuzzScratch.repositoryRoot.appendingPathComponent(path).path)
                .map { ("seed-" + path.replacingOccurrences(of: "/", with: "-"), Array($0)) }
        }
    }

    static func text(_ s: String) -> [UInt8] { Array(s.utf8) }

    static func named(_ list: [[UInt8]], prefix: String = "seed") -> [(name: String, bytes: [UInt8])] {
        list.enumerated().map { ("\(prefix)-\($0.offset + 1)", $0.element) }
    }

    // MARK: - YAML

    /// The map the scenario seeds name as `map.yaml` (also a map seed).
    public static let tinyMap = """
        name: tiny
        cloud:
          id: cloud
          compute: { device: a100-80gb, slots: 2, queue: 4 }
        edges:
          - id: edge-1
            x: 0
            y: 0
            rsus: [rsu-1]
            compute: { device: rtx-4090 }
        rsus:
          - id: rsu-1
            x: 10
            y: 20.5
            radius: 250
          - id: rsu-2
            x: 300
            y: 0
            radius: 200
            compute: { device: jetson-agx-orin, slots: 1, queue: 2 }

        """

    /// Every section of the README's map example.
    static let fullMap = """
        name: monaco
        cloud: { id: cloud, compute: { device: a100-80gb, slots: 8, queue: 64 } }
        macro: { id: macro, x: 1094.3, y: 1049.4, radius: 1650 }
        edges:
          - { id: edge-1, x: 979.3, y: 625.0, rsus: [rsu-1, rsu-2], compute: { device: rtx-4090, slots: 8, queue: 32 } }
        rsus:
          - { id: rsu-1, x: 846.6, y: 1036.2, radius: 250, compute: { device: jetson-agx-orin, slots: 1, queue: 4 } }
          - { id: rsu-2, x: 700.0, y: 900.0, radius: 250 }
          - { id: rsu-3, x: 900.0, y: 700.0, radius: 400,
              cellular: { bandwidth_mhz: 40, rate_model: lte-cqi, max_rate_mbps: 50 }, backhaul: { latency_ms: 8 },
              compute: { device: rtx-4090 } }
        links:
          cellular: { bandwidth_mhz: 20, tx_power_dbm: 23, noise_dbm: -80, loss: 0, rate_model: shannon, activity_window: 1 }
          macro:    { bandwidth_mhz: 10, tx_power_dbm: 23, noise_dbm: -80, loss: 0 }
          backhaul: { latency_ms: 2, jitter_ms: 0.2, bandwidth_mbps: 1000, loss: 0 }
          wan:      { latency_ms: 30, jitter_ms: 3, bandwidth_mbps: 1000, loss: 0 }
          v2v:      { range_m: 300, tx_power_dbm: 23, noise_dbm: -95, bandwidth_mhz: 10, frequency_ghz: 5.9 }

        """

    static let tinyScenario = """
        name: test
        map: map.yaml
        trace: traces/trace.csv
        duration: 60
        seed: 7
        start: first
        policy: hedged
        onboard: { device: jetson-agx-orin, slots: 1, queue: 1 }
        prices: { onboard: 0, v2v: 0.5, rsu: 1, macro: 3 }
        workload:
          arrival: periodic
          mean_interval: 1.5
          model: llama-2-13b
          input_tokens: 128
          output_tokens: 16
          deadline: 3
          payload_bytes: 1000
          result_bytes: 500
          shareable: true
        liveness:
          beacon_interval: 0.2
          suspect_after: 3
          dead_after: 5
        faults:
          - { at: 20, node: rsu-2, mode: hang }
          - { at: 10, node: edge-1, mode: crash, for: 5 }
          - { at: 30, node: rsu-1, mode: degrade, for: 10, loss: 0.3, latency_ms: 80 }
          - { at: 40, node: edge-1, mode: partition, for: 5 }

        """

    static let fileArrivalsScenario = """
        name: arrivals
        map: map.yaml
        trace: traces/trace.csv
        start: 0.5
        workload:
          arrival: file
          arrivals: arrivals.csv
          freshness: 10
          sharing_area: 200
          tasks:
            - { name: scene-caption, weight: 3, model: llama-3-8b, input_tokens: 256, output_tokens: 32, deadline: 5.0, payload_bytes: 20000, result_bytes: 2000, shareable: true }
            - { name: lane-hint, weight: 1, model: llama-3-8b-q4, input_tokens: 128, output_tokens: 16, deadline: 3.0, payload_bytes: 30000, result_bytes: 500 }

        """
}
