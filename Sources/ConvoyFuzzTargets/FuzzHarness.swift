import ConvoyCore
import ConvoyMobility
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Foundation

/// The decoders of untrusted input, one harness each: what the libFuzzer binary (`tools/fuzz-package/`, run by
/// `tools/fuzz`) feeds its inputs to, and what `ConvoyFuzzReplayTests` replays the committed corpus
/// (`Tests/FuzzCorpus/<harness>/`) through. A thrown error is a correct answer to a bad input; a
/// trap, a sanitizer report or a hang is a finding.
///
/// Beyond "does not crash", a harness checks what the format promises where that is exact: a wire
/// payload that decodes re-encodes to the same bytes, and so does an envelope whose times are
/// within ±1e9 s (PROTOCOL.md); JSON that decodes survives an encode/decode round trip; a trace
/// that loads can be summarised (`TraceInfo`), interpolated, and written and read back as
/// trajectory files unchanged.
public enum FuzzHarness: String, CaseIterable, Sendable {
    /// `Envelope(decoding:)` and `Envelope.sender(ofFrame:)`, then the payload for its kind.
    case envelope
    case beacon
    case v2vBeacon = "v2v-beacon"
    case request
    case reply
    case cancel
    case sharedResult = "shared-result"
    /// `ControlCommand` JSON (launcher's control socket).
    case control
    /// `ControlReply` JSON (what `convoy fail/recover` reads back).
    case controlReply = "control-reply"
    /// `RecordBatch` JSON (launcher's record socket), then `owned(by:)` as the launcher filters it.
    case record
    /// `Trace.load(path:)` on a file (the format is detected from the content, so the three trace
    /// harnesses differ only in their seeds: plain/SUMO CSV, SUMO FCD XML, ns-2; gzip in each).
    case traceCSV = "trace-csv"
    case traceFCD = "trace-fcd"
    case traceNS2 = "trace-ns2"
    /// `Trace.load(path:)` on a Convoy trace index (`CVYTRIDX`, `convoy trace import`).
    case traceIndex = "trace-index"
    /// `TrajectoryFile.decode` (the per-vehicle files in a run directory).
    case trajectory
    /// `GeoProjection.sumoNetwork(path:)` (a SUMO `.net.xml`'s `<location>`).
    case sumoNet = "sumo-net"
    /// `Scenario.load(path:)` (`Scenario.parse`), in a directory holding the maps and traces the
    /// seeds name (see `FuzzScratch`).
    case scenario
    /// `MapSpec.load(path:)` (`MapSpec.parse`).
    case map
    /// `ArrivalFile.parse` (a scenario's `workload.arrivals` CSV).
    case arrivals
    /// `PromptFile.parse` (a task's `prompts:` file), as JSON Lines and as CSV.
    case prompts

    /// Whether the input is written to a file first (the reader's entry point takes a path).
    public var readsFile: Bool {
        switch self {
        case .traceCSV, .traceFCD, .traceNS2, .traceIndex, .sumoNet, .scenario, .map: true
        default: false
        }
    }

    /// Feeds `input` to the decoder. Returns whether it was accepted (decoded without an error);
    /// either answer is fine, only a crash or hang is not.
    @discardableResult
    public func run(_ input: UnsafeRawBufferPointer, scratch: FuzzScratch) -> Bool {
        switch self {
        case .envelope: return Self.envelope(Array(input))
        case .beacon: return Self.wire(Beacon.self, Array(input))
        case .v2vBeacon: return Self.wire(V2VBeacon.self, Array(input))
        case .request: return Self.wire(InferenceRequest.self, Array(input))
        case .reply: return Self.wire(InferenceReply.self, Array(input))
        case .cancel: return Self.wire(InferenceCancel.self, Array(input))
        case .sharedResult: return Self.wire(SharedResult.self, Array(input))
        case .control: return Self.json(ControlCommand.self, Data(input))
        case .controlReply: return Self.json(ControlReply.self, Data(input))
        case .record: return Self.record(Data(input))
        case .trajectory:
            return Self.accepts { () throws(InputError) in
                let trajectory = try TrajectoryFile.decode(Data(input), file: "fuzz.trajectory")
                Self.exercise(trajectory)
            }
        case .arrivals:
            return Self.accepts {
                // As `ArrivalFile.load` reads it: UTF-8 text or nothing.
                guard let text = String(validating: input, as: UTF8.self) else { throw InputError(file: "fuzz.csv", "not UTF-8") }
                _ = try ArrivalFile.parse(text, file: "arrivals.csv", tasks: Self.arrivalTasks)
            }
        case .prompts:
            // Both parsers see every input; accepted if either takes it.
            guard let text = String(validating: input, as: UTF8.self) else { return false }
            let jsonl = Self.accepts { _ = try PromptFile.parse(text, file: "prompts.jsonl", csv: false) }
            let csv = Self.accepts { _ = try PromptFile.parse(text, file: "prompts.csv", csv: true) }
            return jsonl || csv
        case .traceCSV, .traceFCD, .traceNS2, .traceIndex:
            let path = scratch.write(input, to: scratch.tracePath)
            return Self.accepts { () throws(InputError) in
                let trace = try Trace.load(path: path)
                Self.exercise(trace)
            }
        case .sumoNet:
            let path = scratch.write(input, to: scratch.tracePath)
            return Self.accepts { () throws(InputError) in _ = try GeoProjection.sumoNetwork(path: path) }
        case .map:
            let path = scratch.write(input, to: scratch.mapPath)
            return Self.accepts { _ = try MapSpec.load(path: path) }
        case .scenario:
            let path = scratch.write(input, to: scratch.scenarioPath)
            return Self.accepts { _ = try Scenario.load(path: path) }
        }
    }

    /// `run` on an array (replay, seeds).
    @discardableResult
    public func run(_ input: [UInt8], scratch: FuzzScratch) -> Bool {
        input.withUnsafeBytes { run($0, scratch: scratch) }
    }

    // MARK: - Wire

    static func envelope(_ frame: [UInt8]) -> Bool {
        // The forwarder reads the sender from the header alone.
        let sender = Envelope.sender(ofFrame: frame)
        let envelope: Envelope
        do {
            envelope = try Envelope(decoding: frame)
        } catch {
            _ = error.counterName
            _ = error.description
            return false
        }
        precondition(sender == envelope.sender, "sender(ofFrame:) disagrees with the decoded envelope")
        // Times are µs integers on the wire; within ±1e9 s they survive the trip through seconds exactly.
        if abs(envelope.sentAt) <= 1e9, abs(envelope.deliverAt ?? 0) <= 1e9 {
            precondition(envelope.encoded() == frame, "a decoded envelope does not re-encode to its bytes")
        }
        let payload = envelope.payload
        // The payload as a receiver decodes it for the kind.
        switch envelope.kind {
        case .beacon: _ = wire(Beacon.self, payload)
        case .v2vBeacon: _ = wire(V2VBeacon.self, payload)
        case .request: _ = wire(InferenceRequest.self, payload)
        case .reply: _ = wire(InferenceReply.self, payload)
        case .cancel: _ = wire(InferenceCancel.self, payload)
        case .sharedResult: _ = wire(SharedResult.self, payload)
        case .fedUp: _ = wire(FedUp.self, payload)
        case .fedDown: _ = wire(FedDown.self, payload)
        case .analyticsUp: _ = wire(AnalyticsReport.self, payload)
        case .analyticsAck: _ = wire(AnalyticsAck.self, payload)
        case .record: _ = record(Data(payload))
        case .control: _ = json(ControlCommand.self, Data(payload))
        case .controlReply: _ = json(ControlReply.self, Data(payload))
        }
        return true
    }

    static func wire<P: WirePayload>(_: P.Type, _ bytes: [UInt8]) -> Bool {
        let value: P
        do {
            value = try P.decode(bytes)
        } catch {
            _ = error.description
            return false
        }
        precondition(value.encoded() == bytes, "a decoded \(P.self) does not re-encode to its bytes")
        return true
    }

    // MARK: - JSON

    static func json<T: Codable & Equatable>(_: T.Type, _ data: Data) -> Bool {
        decodeJSON(T.self, data) != nil
    }

    /// The value, or nil when the JSON is refused; a value that decodes must survive a round trip.
    static func decodeJSON<T: Codable & Equatable>(_: T.Type, _ data: Data) -> T? {
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch {
            _ = String(describing: error)
            return nil
        }
        // Something JSON cannot carry (a non-finite number) may fail to encode: an error, not a finding.
        if let again = try? JSONEncoder().encode(value) {
            let decoded = try? JSONDecoder().decode(T.self, from: again)
            precondition(decoded == value, "\(T.self) does not survive a JSON round trip")
        }
        return value
    }

    static func record(_ data: Data) -> Bool {
        guard let batch = decodeJSON(RecordBatch.self, data) else { return false }
        // What the launcher does with a batch before recording it.
        let own = batch.owned(by: batch.requests.first?.vehicleID ?? batch.counters.first?.nodeID ?? "veh1")
        precondition(own.rowCount <= batch.rowCount)
        _ = batch.isEmpty
        return true
    }

    // MARK: - Files

    static let arrivalTasks = [TaskSpec(name: "scene-caption"), TaskSpec(name: "lane-hint", model: "llama-3-8b-q4")]

    /// What the rest of Convoy does with a loaded trace.
    static func exercise(_ trace: Trace) {
        _ = TraceInfo(trace)
        _ = trace.coordinateFrame.description
        for trajectory in trace.trajectories.prefix(64) { exercise(trajectory) }
    }

    static func exercise(_ trajectory: Trajectory) {
        let start = trajectory.start, end = trajectory.end
        for t in [start, end, start + (end - start) / 3, (start + end) / 2, start - 1, end + 1] {
            _ = trajectory.position(at: t)
        }
        // The launcher writes each vehicle's trajectory file; the vehicle reads it back.
        if let back = try? TrajectoryFile.decode(TrajectoryFile.encode(trajectory), file: "fuzz.trajectory") {
            precondition(back == trajectory || trajectory.samples.contains { $0.speed?.isNaN == true || $0.angle?.isNaN == true },
                         "a trajectory does not survive TrajectoryFile.encode/decode")
        } else {
            preconditionFailure("TrajectoryFile.decode refuses what TrajectoryFile.encode wrote")
        }
    }

    /// Runs `body`; a thrown error means "refused" (its description is built, as a user would see it).
    static func accepts<E: Error>(_ body: () throws(E) -> Void) -> Bool {
        do {
            try body()
            return true
        } catch {
            _ = String(describing: error)
            return false
        }
    }
}

/// Per-process scratch files for the harnesses whose reader takes a path: one directory, with one
/// input path per harness kind reused for every input, plus what the scenario seeds refer to
/// (`map.yaml`, `monaco.yaml` and the other bundled maps, a small trace and arrivals file).
public final class FuzzScratch: @unchecked Sendable {
    public let directory: String
    let tracePath: String
    let mapPath: String
    let scenarioPath: String

    /// The repository's root (this file is Sources/ConvoyFuzzTargets/FuzzHarness.swift), for the bundled maps.
    public static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    public init() {
        var template = Array((NSTemporaryDirectory() + "/convoy-fuzz-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "cannot create a temporary directory: errno \(errno)")
        directory = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let maps = directory + "/maps"
        tracePath = directory + "/input.trace"
        mapPath = maps + "/input-map.yaml"
        scenarioPath = maps + "/input-scenario.yaml"
        // The scenario seeds say `map: map.yaml` or `monaco.yaml`, `trace: traces/trace.csv` or
        // `../traces/monaco.fcd.xml`, `arrivals: arrivals.csv`: all relative to the scenario file.
        let fm = FileManager.default
        try? fm.createDirectory(atPath: maps + "/traces", withIntermediateDirectories: true)
        try? fm.createDirectory(atPath: directory + "/traces", withIntermediateDirectories: true)
        let bundled = Self.repositoryRoot.appendingPathComponent("maps").path
        for name in (try? fm.contentsOfDirectory(atPath: bundled)) ?? [] where name.hasSuffix(".yaml") {
            try? fm.copyItem(atPath: bundled + "/" + name, toPath: maps + "/" + name)
        }
        let trace = "time,id,x,y\n0,veh1,0,0\n1,veh1,10,0\n"
        _ = fm.createFile(atPath: maps + "/map.yaml", contents: Data(FuzzSeeds.tinyMap.utf8))
        _ = fm.createFile(atPath: maps + "/traces/trace.csv", contents: Data(trace.utf8))
        _ = fm.createFile(atPath: directory + "/traces/monaco.fcd.xml", contents: Data(trace.utf8))
        _ = fm.createFile(atPath: maps + "/arrivals.csv", contents: Data("time,vehicle,task\n1,veh1,scene-caption\n2,veh1,\n".utf8))
    }

    deinit { remove() }

    /// Removes the directory (also done when the scratch is released).
    public func remove() { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes `bytes` to `path` (truncating) and returns `path`.
    func write(_ bytes: UnsafeRawBufferPointer, to path: String) -> String {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        precondition(fd >= 0, "cannot write \(path): errno \(errno)")
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            precondition(n > 0, "cannot write \(path): errno \(errno)")
            done += n
        }
        close(fd)
        return path
    }
}
