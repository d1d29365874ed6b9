import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

/// Split inference on the real binary: the on-board stage, the activations and KV cache on the
/// links, and failover of the kept stage output through an RSU crash.
@Suite("End to end: split inference", .serialized)
struct SplitInferenceRunTests {
    @Test(.timeLimit(.minutes(2)))
    func splitRequestsFailOverThroughAnRSUCrashWithoutLosingOne() async throws {
        let dir = try Fixture.makeScenario(duration: 14, faults: """
              - { at: 4, node: rsu-1, mode: crash, for: 4 }

            """, workload: """
            workload:
              arrival: periodic
              mean_interval: 0.5
              tasks:
                - { name: split6, model: smollm2-135m, input_tokens: 16, output_tokens: 8, deadline: 4, payload_bytes: 2000, split: 6 }
            """, extra: "onboard: { device: jetson-agx-orin, slots: 2, queue: 4 }")
        let db = try await Fixture.launchToEnd(dir)
        let requests = try db.fetchRequests()
        #expect(requests.count > 60)
        // Every request ends in exactly one terminal state; nearly all complete.
        #expect(requests.allSatisfy { $0.status != nil })
        let completed = requests.filter { $0.status == .completed }
        #expect(Double(completed.count) >= 0.9 * Double(requests.count), "\(requests.count - completed.count) not completed")
        // Split at 6 of SmolLM2's 30 layers: 16 tokens × 576 × 2 B of activations + 6/30 of 16 × 23 040 B of KV cache.
        let split = completed.filter { $0.splitK == 6 }
        #expect(split.count >= completed.count * 9 / 10)
        #expect(split.allSatisfy { $0.splitBytes == 92_160 && $0.payloadBytes == 92_160 && ($0.lowerStageMs ?? 0) > 0 })
        #expect(split.allSatisfy { $0.path?.hasPrefix("rsu") == true || $0.path == "macro" })
        // The crash sent some of them to a second server with the stage output kept on board.
        let attempts = try db.fetchAttempts()
        let failedOver = Set(attempts.filter { $0.attempt >= 2 }.map(\.requestID))
        #expect(split.contains { failedOver.contains($0.requestID) })
        #expect(attempts.allSatisfy { $0.outcome != "pending" })
        let report = RunReport(snapshot: try db.snapshot()).text(title: "split")
        #expect(report.contains("Split inference, by task and split point"))
    }
}
