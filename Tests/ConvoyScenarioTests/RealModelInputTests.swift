import ConvoyCore
import ConvoyReasoning
import Foundation
import Testing
@testable import ConvoyScenario

/// What a real model server needs from the input files: the map's `backend:` and `calibration:`,
/// and a task's prompt file, each with its errors at file, line and field.
@Suite struct RealModelInputTests {
    func map(compute: String) -> String {
        """
        name: m
        cloud: { id: cloud, compute: { device: a100-80gb } }
        edges:
          - id: edge-1
            x: 0
            y: 0
            rsus: [rsu-1]
            compute: \(compute)
        rsus:
          - { id: rsu-1, x: 0, y: 0, radius: 100 }
        """
    }

    @Test func aBackendIsReadWithItsDefaults() throws {
        let spec = try MapSpec.parse(map(compute: "{ device: epyc-2vcpu, slots: 2, backend: { kind: openai, url: \"http://127.0.0.1:8077\", model: smollm2-135m } }"),
                                     file: "m.yaml")
        let backend = try #require(spec.compute(of: "edge-1")?.backend)
        #expect(backend == BackendSpec(url: "http://127.0.0.1:8077", model: "smollm2-135m"))
        #expect(backend.api == .completions && backend.timeScale == 1 && backend.timeout == 60 && backend.stall == 10)
        #expect(spec.compute(of: "edge-1")?.slots == 2)
        #expect(spec.compute(of: "rsu-1") == nil && spec.compute(of: "cloud")?.device == "a100-80gb")
    }

    @Test func badBackendsAreRefusedAtTheirLine() {
        let cases: [(String, String, String)] = [
            ("{ kind: vllm, url: \"http://h:1\", model: smollm2-135m }", "kind", "unknown backend kind 'vllm'"),
            ("{ kind: openai, url: \"ftp://h\", model: smollm2-135m }", "url", "expected an http:// or https:// URL"),
            ("{ kind: openai, url: \"http://h:1\", model: gpt-9 }", "model", "unknown model 'gpt-9'"),
            ("{ kind: openai, url: \"http://h:1\", model: smollm2-135m, api: embeddings }", "api", "expected completions or chat"),
            ("{ kind: openai, url: \"http://h:1\", model: smollm2-135m, time_scale: 0 }", "time_scale", "expected a number > 0"),
            ("{ kind: openai, url: \"http://h:1\", model: smollm2-135m, stal: 3 }", "stal", "unknown key"),
        ]
        for (backend, field, message) in cases {
            let error = #expect(throws: InputError.self) {
                _ = try MapSpec.parse(map(compute: "{ device: epyc-2vcpu, backend: \(backend) }"), file: "m.yaml")
            }
            #expect(error?.line == 8, "\(backend)")
            #expect(error?.field?.hasSuffix(field) == true, "\(backend): \(error?.field ?? "nil")")
            #expect(error?.message.contains(message) == true || error?.description.contains(message) == true,
                    "\(backend): \(error?.description ?? "")")
        }
    }

    @Test func aCalibrationProfileReplacesTheRooflineForItsModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-cal-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let profile = MeasuredProfile(model: "smollm2-135m", prefillBase: 0.01, prefillPerToken: 0.007, decodeStepBase: 0.012,
                                      decodeStepPerContextToken: 0)
        try JSONEncoder().encode(profile).write(to: dir.appendingPathComponent("cal.json"))
        let path = dir.appendingPathComponent("m.yaml").path
        try map(compute: "{ device: epyc-2vcpu, calibration: cal.json }").write(toFile: path, atomically: true, encoding: .utf8)
        let compute = try #require(try MapSpec.load(path: path).compute(of: "edge-1"))
        #expect(compute.calibration == profile)
        // 0.01 + 0.007 × 100 + 10 × 0.012
        #expect(abs((compute.inferenceTime(model: "smollm2-135m", inputTokens: 100, outputTokens: 10) ?? 0) - 0.83) < 1e-9)
        // Other models keep the roofline model.
        #expect(compute.inferenceTime(model: "llama-3-8b-q4", inputTokens: 100, outputTokens: 10)
            == ComputeModel.inferenceTime(model: ModelProfile.catalog["llama-3-8b-q4"]!, device: compute.profile, inputTokens: 100,
                                          outputTokens: 10))
        var server = compute.modelledBackend()
        guard case .admitted(let wakeAt?) = server.admit(ComputeWork(requestID: "v/1", attempt: 1, model: "smollm2-135m", inputTokens: 100,
                                                                     outputTokens: 10), now: 0) else { Issue.record("not admitted"); return }
        #expect(abs(wakeAt - 0.83) < 1e-9)
        try "{\"model\": 3}".write(to: dir.appendingPathComponent("cal.json"), atomically: true, encoding: .utf8)
        let error = #expect(throws: InputError.self) { _ = try MapSpec.load(path: path) }
        #expect(error?.field?.hasSuffix("calibration") == true && error?.message.contains("not a calibration profile") == true)
    }

    @Test func promptFilesInJSONLinesAndCSV() throws {
        let jsonl = "{\"prompt\": \"Is the road clear?\"}\n\n\"A bare string\"\n{\"prompt\": \"Quotes \\\" and, commas\", \"id\": 3}\n"
        #expect(try PromptFile.parse(jsonl, file: "p.jsonl", csv: false) == ["Is the road clear?", "A bare string", "Quotes \" and, commas"])
        let csv = "id,prompt\r\n1,Is the road clear?\r\n2,\"Quoted, with \"\"quotes\"\"\"\r\n"
        #expect(try PromptFile.parse(csv, file: "p.csv", csv: true) == ["Is the road clear?", "Quoted, with \"quotes\""])
        let bad: [(String, Bool, Int?, String)] = [
            ("{\"prompt\": 3}\n", false, 1, "missing, or not a string"),
            ("ok\n", false, 1, "not JSON"),
            ("{\"prompt\": \"a\"}\n[1]\n", false, 2, "expected {\"prompt\""),
            ("{\"prompt\": \"\"}\n", false, 1, "empty prompt"),
            ("id,text\n1,a\n", true, 1, "must name a prompt column"),
            ("prompt\n\"unterminated\n", true, 2, "unterminated quoted field"),
            ("id,prompt\n1,a,b\n", true, 2, "expected 2 fields, got 3"),
            ("\n\n", false, nil, "no prompts"),
        ]
        for (text, isCSV, line, message) in bad {
            let error = #expect(throws: InputError.self) { _ = try PromptFile.parse(text, file: "p", csv: isCSV) }
            #expect(error?.line == line && error?.message.contains(message) == true, "\(text): \(String(describing: error))")
        }
        let long = "{\"prompt\": \"\(String(repeating: "a", count: PromptFile.maxPromptBytes + 1))\"}"
        #expect(throws: InputError.self) { _ = try PromptFile.parse(long, file: "p", csv: false) }
    }

    @Test func aTaskNamesItsPromptFileRelativeToTheScenario() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-prompts-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("traces"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try map(compute: "{ device: rtx-4090 }").write(to: dir.appendingPathComponent("map.yaml"), atomically: true, encoding: .utf8)
        try "time,id,x,y\n0,v1,0,0\n".write(to: dir.appendingPathComponent("traces/t.csv"), atomically: true, encoding: .utf8)
        try "{\"prompt\": \"one\"}\n{\"prompt\": \"two\"}\n".write(to: dir.appendingPathComponent("q.jsonl"), atomically: true, encoding: .utf8)
        let scenario = """
        name: s
        map: map.yaml
        trace: traces/t.csv
        workload:
          model: smollm2-135m
          prompts: q.jsonl
        """
        let path = dir.appendingPathComponent("s.yaml").path
        try scenario.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try Scenario.load(path: path).workload.tasks.first?.prompts == ["one", "two"])
        // backend-down on a node without a real model server is refused at its line.
        try (scenario + "\nfaults:\n  - { at: 1, node: edge-1, mode: backend-down, for: 2 }\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let noBackend = #expect(throws: InputError.self) { _ = try Scenario.load(path: path) }
        #expect(noBackend?.line == 8 && noBackend?.message.contains("needs a real model server") == true, "\(String(describing: noBackend))")
        try scenario.replacingOccurrences(of: "q.jsonl", with: "missing.jsonl").write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: InputError.self) { _ = try Scenario.load(path: path) }
        #expect(error?.line == 6 && error?.field == "workload.prompts", "\(String(describing: error))")
    }
}
