import Testing
@testable import ConvoyReasoning

/// Split inference's per-layer compute, activation sizes and partition choice against hand-computed numbers.
@Suite struct SplitInferenceTests {
    let llama = ModelProfile.catalog["llama-3-8b"]!
    let jetson = DeviceProfile.catalog["jetson-agx-orin"]!
    let rtx = DeviceProfile.catalog["rtx-4090"]!
    let a100 = DeviceProfile.catalog["a100-80gb"]!

    @Test func stagesAddUpToTheWholeModel() {
        let whole = ComputeModel.inferenceTime(model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
        let prefill = LayerModel.prefillTime(layers: 0..<10, model: llama, device: rtx, inputTokens: 256)
            + LayerModel.prefillTime(layers: 10..<32, model: llama, device: rtx, inputTokens: 256)
        let decode = LayerModel.decodeTime(layers: 0..<32, model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
        #expect(abs(prefill + decode - whole) < 1e-12)
        // Half the layers: half the prefill.
        let half = LayerModel.prefillTime(layers: 0..<16, model: llama, device: rtx, inputTokens: 256)
        #expect(abs(half - ComputeModel.prefillTime(model: llama, device: rtx, inputTokens: 256) / 2) < 1e-12)
        // Each stage pays its device's step overhead: two stages of 16 cost one overhead more per step.
        let split = LayerModel.decodeTime(layers: 0..<16, model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
            + LayerModel.decodeTime(layers: 16..<32, model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
        #expect(abs(split - decode - 32 * rtx.stepOverhead) < 1e-12)
        #expect(LayerModel.prefillTime(layers: 0..<0, model: llama, device: rtx, inputTokens: 256) == 0)
    }

    @Test func activationAndCacheSizes() {
        // 256 tokens × 4096 × 2 B; one token: 8 KiB.
        #expect(LayerModel.activationBytes(model: llama, tokens: 256) == 2_097_152)
        #expect(LayerModel.activationBytes(model: llama, tokens: 1) == 8_192)
        // 131 072 B/token over 32 layers: 16 layers of 256 tokens = 16 MiB.
        #expect(LayerModel.kvCacheBytes(model: llama, layers: 16, tokens: 256) == 16_777_216)
    }

    func request(payload: Int = 20_000) -> SplitRequest {
        SplitRequest(model: llama, inputTokens: 256, outputTokens: 32, payloadBytes: payload, resultBytes: 2_000, lower: jetson, upper: a100)
    }

    @Test func theExtremesAreTodaysPaths() {
        let context = SplitContext(upRate: 50e6, downRate: 80e6, latency: 0.01)
        let remote = request().plan(k: 0, mode: .pipelined, context: context)
        #expect(remote.upperCompute == ComputeModel.inferenceTime(model: llama, device: a100, inputTokens: 256, outputTokens: 32))
        #expect(remote.lowerCompute == 0 && remote.bytesUp == 20_000 && remote.bytesDown == 2_000)
        #expect(abs(remote.transfer - (0.01 + 20_000 * 8 / 50e6 + 0.01 + 2_000 * 8 / 80e6)) < 1e-12)
        let local = request().plan(k: 32, mode: .handoff, context: context)
        #expect(local.lowerCompute == ComputeModel.inferenceTime(model: llama, device: jetson, inputTokens: 256, outputTokens: 32))
        #expect(local.transfer == 0 && local.bytesUp == 0 && local.upperCompute == 0)
    }

    @Test func pipelinedDecodeCrossesTheLinkEveryToken() {
        let context = SplitContext(upRate: 50e6, downRate: 80e6, latency: 0.01)
        let plan = request().plan(k: 8, mode: .pipelined, context: context)
        // The prompt's activations once, then 31 steps of one token up (8 KiB) and a token id down.
        #expect(plan.bytesUp == 2_097_152 + 31 * 8_192)
        #expect(plan.bytesDown == 31 * 4 + 2_000)
        #expect(plan.transfer > 31 * 2 * 0.01, "a round trip per generated token")
        let handoff = request().plan(k: 8, mode: .handoff, context: context)
        #expect(handoff.bytesUp == 2_097_152 + LayerModel.kvCacheBytes(model: llama, layers: 8, tokens: 256))
    }

    @Test func thePolicyFollowsTheLinkAndTheLoad() {
        let policy = LatencyMinimisingSplit()
        // A fast link to an A100: everything remote.
        let fast = SplitContext(upRate: 200e6, downRate: 200e6, latency: 0.005)
        #expect(policy.choose(request(), mode: .pipelined, context: fast).k == 0)
        // A crawling link: everything on board.
        let slow = SplitContext(upRate: 10e3, downRate: 10e3, latency: 0.5)
        #expect(policy.choose(request(), mode: .pipelined, context: slow).k == 32)
        // The same fast link, but the upper tier has a 30 s queue: on board.
        let busy = SplitContext(upRate: 200e6, downRate: 200e6, latency: 0.005, upperWait: 30)
        #expect(policy.choose(request(), mode: .handoff, context: busy).k == 32)
        // A raw input far larger than the activations (100 MB of sensor data) on a 100 Mbit/s link:
        // a few layers below, handed off, beat both extremes.
        let medium = SplitContext(upRate: 100e6, downRate: 100e6, latency: 0.01)
        let big = request(payload: 100_000_000)
        let chosen = policy.choose(big, mode: .handoff, context: medium)
        #expect(chosen.k > 0 && chosen.k < 32, "k = \(chosen.k)")
        #expect(chosen.total < big.plan(k: 0, mode: .handoff, context: medium).total)
        #expect(chosen.total < big.plan(k: 32, mode: .handoff, context: medium).total)
        // A fixed split is clamped to the model.
        #expect(FixedSplit(k: 99).choose(request(), mode: .handoff, context: fast).k == 32)
        #expect(FixedSplit(k: 12).choose(request(), mode: .handoff, context: fast).k == 12)
    }
}

/// The stages the nodes run (handoff mode), against hand-computed numbers.
@Suite struct SplitStageTests {
    let llama = ModelProfile.catalog["llama-3-8b"]!
    let jetson = DeviceProfile.catalog["jetson-agx-orin"]!
    let rtx = DeviceProfile.catalog["rtx-4090"]!

    @Test func stageTimesAndHandoffBytes() {
        // 8 of 32 layers of a 256-token prefill on the Orin: compute-bound, 2·8.03e9·256 / (0.4·42e12) × 8/32.
        #expect(abs(SplitStage.lower(k: 8).time(model: llama, device: jetson, inputTokens: 256, outputTokens: 32) - 0.061181) < 1e-6)
        // The other 24 layers of the prefill on the 4090, then 32 decode steps of the whole model.
        #expect(abs(SplitStage.upper(from: 8).time(model: llama, device: rtx, inputTokens: 256, outputTokens: 32) - 0.734671) < 1e-6)
        // Activations 256 × 4096 × 2 B plus the KV cache of 8 layers: 2 MiB + 8 MiB.
        #expect(SplitStage.handoffBytes(model: llama, k: 8, inputTokens: 256) == 10_485_760)
        // The two stages on one device are the whole request.
        let whole = ComputeModel.inferenceTime(model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
        let both = SplitStage.lower(k: 8).time(model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
            + SplitStage.upper(from: 8).time(model: llama, device: rtx, inputTokens: 256, outputTokens: 32)
        #expect(abs(both - whole) < 1e-12)
    }

    @Test func aStageFitsWhereTheWholeModelDoesNot() {
        let big = ModelProfile.catalog["llama-2-70b"]!  // 34.5 GB of weights
        let small = DeviceProfile(name: "small", memoryBandwidth: 100e9, peakFLOPS: 10e12, memoryEfficiency: 0.5, computeEfficiency: 0.5,
                                  stepOverhead: 0.001, memoryBytes: 16e9)
        #expect(SplitStage.lower(k: 20).fits(model: big, device: small))
        #expect(!SplitStage.lower(k: 80).fits(model: big, device: small))
        #expect(!SplitStage.upper(from: 20).fits(model: big, device: small), "the upper stage decodes with the whole model")
        // A compute admits the stage it can hold and times it layer by layer.
        var server = ComputeServer(device: small, slots: 1, queueCapacity: 0)
        guard case .admitted(let job) = server.admit(requestID: "v/1", model: "llama-2-70b", inputTokens: 128, outputTokens: 16,
                                                     stage: .lower(k: 20), now: 0) else { Issue.record("not admitted"); return }
        #expect(abs(job.finishAt - SplitStage.lower(k: 20).time(model: big, device: small, inputTokens: 128, outputTokens: 16)) < 1e-12)
        #expect(server.admit(requestID: "v/2", model: "llama-2-70b", inputTokens: 128, outputTokens: 16, now: 0)
            == .unsupported("llama-2-70b does not fit on small"))
    }
}
