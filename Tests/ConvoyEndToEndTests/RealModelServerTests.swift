import ConvoyReasoning
import ConvoyRecording
import ConvoyScenario
import ConvoyWire
import Foundation
import Testing

/// The real binary with a real model server: `tools/model-server` (llama.cpp serving
/// SmolLM2-135M-Instruct) behind edge-1. The edge server crashes, and later the model server is
/// killed, mid-run; requests keep completing, with real answers from edge-1 before and elsewhere
/// after, and none is left without a terminal state.
@Suite("End to end: a real model server", .serialized)
struct RealModelServerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(.timeLimit(.minutes(12)))
    func realAnswersSurviveAnEdgeCrashAndTheServerBeingKilled() async throws {
        let server = try await ModelServer.start()
        defer { server.stop() }
        let port = server.port, serverPID = server.pid

        let map = """
        name: line-real
        cloud: { id: cloud, compute: { device: a100-80gb, slots: 8, queue: 64 } }
        macro: { id: macro, x: 400, y: 0, radius: 2000 }
        edges:
          - id: edge-1
            x: 400
            y: 50
            rsus: [rsu-1, rsu-2]
            compute:
              device: epyc-2vcpu
              slots: 1
              queue: 8
              backend: { kind: openai, url: "http://127.0.0.1:\(port)", model: smollm2-135m, api: chat, timeout: 20, stall: 5 }
        rsus:
          - { id: rsu-1, x: 300, y: 20, radius: 600 }
          - { id: rsu-2, x: 500, y: 20, radius: 600 }
        links:
          macro: { bandwidth_mhz: 10, noise_dbm: -99 }

        """
        let workload = """
        workload:
          arrival: poisson
          mean_interval: 2
          tasks:
            - { name: ask, model: smollm2-135m, input_tokens: 32, output_tokens: 12, deadline: 10, payload_bytes: 500, prompts: prompts.jsonl }
        """
        let dir = try Fixture.makeScenario(duration: 24, faults: "  - { at: 6, node: edge-1, mode: crash, for: 3 }\n", map: map,
                                           workload: workload)
        let prompts = ["Is the road ahead clear?", "Name one thing a driver checks before turning left.", "What does a red light mean?"]
        try prompts.map { "{\"prompt\": \"\($0)\"}" }.joined(separator: "\n")
            .write(to: dir.appendingPathComponent("prompts.jsonl"), atomically: true, encoding: .utf8)
        let run = dir.appendingPathComponent("run").path
        let launch = try Convoy.start(["launch", dir.appendingPathComponent("scenario.yaml").path, "--out", run])

        // Once edge-1 is back from its crash and has answered again through the real server, kill the server.
        try await Fixture.waitUntil("edge-1 answering after its restart", timeout: 90) {
            try Fixture.reading(run) { db in
                let restarted = try db.fetchNodes().first { $0.nodeID == "edge-1" && $0.incarnation == 2 }
                guard let restarted else { return false }
                return try db.fetchOutputs().contains { $0.failure == nil && $0.startedAt > restarted.startedAt }
            }
        }
        kill(serverPID, SIGKILL)
        let killedAt = try Fixture.reading(run) { try $0.fetchOutputs().map(\.startedAt).max() ?? 0 }
        let result = try await launch.wait(timeout: 120)
        #expect(result.status == 0, "launch output: \(result.output)")

        let db = try RunDatabase.openForReading(path: RunDatabase.databasePath(inRunDirectory: run))
        let requests = try db.fetchRequests()
        let outputs = try db.fetchOutputs()
        let attempts = try db.fetchAttempts()
        #expect(requests.allSatisfy { $0.status != nil }, "open: \(requests.filter { $0.status == nil }.map(\.requestID))")
        let completed = requests.filter { $0.status == .completed }
        #expect(Double(completed.count) >= 0.8 * Double(requests.count), "only \(completed.count) of \(requests.count) completed")
        // Real answers, to the prompts of the file, with the server's measurements.
        let answered = outputs.filter { $0.failure == nil && !$0.answer.isEmpty }
        #expect(answered.count >= 3, "outputs: \(outputs.map { ($0.requestID, $0.failure ?? "ok") })")
        #expect(answered.allSatisfy { prompts.contains($0.prompt) && $0.servedBy == "edge-1" && $0.model == "smollm2-135m" })
        #expect(answered.allSatisfy { ($0.ttftMs ?? 0) > 0 && $0.wallMs >= ($0.ttftMs ?? 0) && ($0.completionTokens ?? 0) > 0 })
        #expect(completed.contains { $0.servedBy == "edge-1" })
        // After the kill, calls fail (refused) and their requests are answered elsewhere.
        let refused = outputs.filter { $0.failure != nil && $0.startedAt >= killedAt }
        #expect(!refused.isEmpty, "no call failed after the model server was killed")
        for output in refused {
            let request = requests.first { $0.requestID == output.requestID }
            #expect(request?.status != .completed || request?.servedBy != "edge-1", "\(output.requestID) answered by a dead server")
        }
        #expect(attempts.contains { $0.outcome == "failed" && $0.detail?.contains("connection refused") == true })
        #expect(try db.fetchFaults().map(\.mode) == ["crash"])

        // Export carries the outputs table.
        let csv = dir.appendingPathComponent("csv").path
        let export = try Convoy.run(["export", run, "--out", csv], timeout: 30)
        #expect(export.status == 0, "\(export.output)")
        #expect(try Fixture.csvRows(csv + "/outputs.csv") == outputs.count)
        // The report shows the measured figures and sample answers.
        let report = try Convoy.run(["report", run], timeout: 30)
        #expect(report.output.contains("Model servers") && report.output.contains("edge-1"), "\(report.output)")
        #expect(Fixture.processes(mentioning: run).isEmpty)
    }

    @Test(.timeLimit(.minutes(12)))
    func calibrateWritesAProfileAMapCanUse() async throws {
        let server = try await ModelServer.start()
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-calibrate-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let profilePath = dir.appendingPathComponent("smollm2.json").path
        let run = try Convoy.run(["calibrate", "http://127.0.0.1:\(server.port)", "--model", "smollm2-135m", "--repeats", "1",
                                  "--device", "epyc-2vcpu", "--out", profilePath], timeout: 300)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("measured") && run.output.contains("roofline (epyc-2vcpu)"), "\(run.output)")
        let profile = try JSONDecoder().decode(MeasuredProfile.self, from: Data(contentsOf: URL(fileURLWithPath: profilePath)))
        #expect(profile.model == "smollm2-135m" && profile.samples?.count == 8)
        // Prefill grows with the prompt (distinct prompts: no cache hides it); decoding takes time.
        #expect(profile.prefillPerToken > 0 && profile.decodeStepBase > 0, "\(profile)")
        let prompts = Set(profile.samples?.map(\.promptTokens) ?? [])
        #expect(prompts.count == 4 && (prompts.max() ?? 0) > 4 * (prompts.min() ?? 0))
        // A map takes it.
        let map = """
        name: calibrated
        cloud: { id: cloud, compute: { device: epyc-2vcpu, calibration: smollm2.json } }
        rsus:
          - { id: rsu-1, x: 0, y: 0, radius: 100, compute: { device: rtx-4090 } }
        """
        try map.write(to: dir.appendingPathComponent("map.yaml"), atomically: true, encoding: .utf8)
        #expect(try MapSpec.load(path: dir.appendingPathComponent("map.yaml").path).cloud.compute.calibration?.model == "smollm2-135m")
        // A server that is not there: a clear error and a non-zero exit.
        let refused = try Convoy.run(["calibrate", "http://127.0.0.1:1", "--model", "smollm2-135m"], timeout: 60)
        #expect(refused.status != 0 && refused.output.contains("connection refused"), "\(refused.output)")
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` (uvicorn does once the model is loaded).
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// `tools/model-server` in the foreground, as a user runs it, on a port of this test process.
struct ModelServer {
    let process: Process
    let port: Int
    let pid: Int32

    static func start() async throws -> ModelServer {
        let script = RealModelServerTests.root.appendingPathComponent("tools/model-server").path
        // The first run makes the virtualenv (llama.cpp builds from source: minutes); `tools/test` does it before.
        let setup = try Convoy.runTool(script, ["setup"], timeout: 900)
        try #require(setup.status == 0, "tools/model-server setup: \(setup.output)")
        let port = 20_000 + Int.random(in: 0..<20_000)
        let pidfile = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-model-\(port).pid").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["--port", "\(port)", "--threads", "1", "--pidfile", pidfile]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        try await Fixture.waitUntil("the model server answering on port \(port)", timeout: 120) {
            RealModelServerTests.accepts(port: port)
        }
        let pid = try #require(Int32(String(contentsOfFile: pidfile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        return ModelServer(process: process, port: port, pid: pid)
    }

    /// Stops the script (which stops its server) and the server itself, if still there.
    func stop() {
        process.terminate()
        kill(pid, SIGKILL)
    }
}
