import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// Expert models and a model split across vehicles on the real binary, through an RSU crash: every
/// request ends in exactly one terminal state, and the V2V schemes really carried work.
@Suite("End to end: expert models and pipelines over V2V", .serialized)
struct HorizontalSchemesRunTests {
    /// `dense`: five vehicles 60 m apart driving together (chains of neighbours within range of each other).
    func run(task: String, extra: String, dense: Bool = false) async throws -> (requests: [RequestRecord], attempts: [AttemptRecord]) {
        let dir = try Fixture.makeScenario(duration: 14, faults: """
              - { at: 5, node: rsu-1, mode: crash, for: 4 }

            """, workload: """
            workload:
              arrival: periodic
              mean_interval: 0.8
              tasks:
                - \(task)
            """, extra: "onboard: { device: jetson-agx-orin, slots: 2, queue: 4 }\n" + extra)
        if dense {
            var trace = "time,id,x,y,speed,angle\n"
            for t in 0...20 { for i in 0..<5 { trace += "\(t),p\(i),\(100 + 60 * i + 2 * t),0,2,90\n" } }
            try trace.write(to: dir.appendingPathComponent("trace.csv"), atomically: true, encoding: .utf8)
        }
        let db = try await Fixture.launchToEnd(dir)
        let requests = try db.fetchRequests(), attempts = try db.fetchAttempts()
        #expect(requests.count > 40)
        #expect(requests.allSatisfy { $0.status != nil }, "every request ends in a terminal state")
        #expect(attempts.allSatisfy { $0.outcome != "pending" })
        let completed = requests.filter { $0.status == .completed }
        #expect(Double(completed.count) >= 0.85 * Double(requests.count), "\(requests.count - completed.count) not completed")
        return (requests, attempts)
    }

    @Test(.timeLimit(.minutes(2)))
    func expertSubtasksGoToHoldersOverV2V() async throws {
        let (requests, attempts) = try await run(
            task: "{ name: report, model: smollm2-135m, input_tokens: 64, output_tokens: 8, deadline: 4, subtasks: [vision, traffic] }",
            extra: """
            experts:
              - { name: vision, model: smollm2-135m, share: 1.0 }
              - { name: traffic, model: llama-3-8b-q4, share: 0.5 }
            """)
        // Subtasks are attempts of their parent: no row under a subtask's id.
        #expect(!requests.contains { $0.requestID.contains(".") })
        #expect(requests.filter { $0.status == .completed }.allSatisfy { $0.path == "experts" })
        #expect(attempts.contains { $0.path == "v2v" && $0.detail?.hasPrefix("expert vision") == true && $0.outcome == "replied" })
        let experts = Set(attempts.compactMap { attempt in attempt.detail.map { String($0.prefix { $0 != ":" }) } })
        #expect(experts.isSuperset(of: ["expert vision", "expert traffic"]))
    }

    @Test(.timeLimit(.minutes(2)))
    func aModelSplitAcrossTwoNeighboursAnswersOverV2V() async throws {
        let (requests, attempts) = try await run(
            task: "{ name: advice, model: smollm2-135m, input_tokens: 64, output_tokens: 8, deadline: 4, pipeline: 2 }", extra: "", dense: true)
        let chained = requests.filter { $0.status == .completed && $0.path == "v2v>v2v" }
        #expect(!chained.isEmpty)
        #expect(attempts.contains { $0.detail?.hasPrefix("pipeline ") == true && $0.outcome == "replied" })
    }
}
