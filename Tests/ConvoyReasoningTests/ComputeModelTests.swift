import ConvoyReasoning
import Testing

@Suite struct ComputeModelTests {
    @Test func catalogHasTheDocumentedProfiles() throws {
        #expect(Set(ModelProfile.catalog.keys) == ["llama-3-8b", "llama-3-8b-q4", "llama-2-13b", "llama-2-70b", "smollm2-135m"])
        #expect(Set(DeviceProfile.catalog.keys) == ["jetson-agx-orin", "rtx-4090", "a100-80gb", "epyc-2vcpu"])
        for (name, profile) in ModelProfile.catalog { #expect(profile.name == name) }
        for (name, profile) in DeviceProfile.catalog { #expect(profile.name == name) }
        // KV bytes per token as derived in the comments: 2 (K and V) · layers · kv heads · head dim · 2 B.
        #expect(try model("llama-3-8b").kvBytesPerToken == Double(2 * 32 * 8 * 128 * 2))
        #expect(try model("llama-2-13b").kvBytesPerToken == Double(2 * 40 * 5120 * 2))
        #expect(try model("llama-2-70b").kvBytesPerToken == Double(2 * 80 * 8 * 128 * 2))
        #expect(try model("llama-2-70b").weightBytes == 34.5e9)
    }

    /// Published: Llama-2-70B 4-bit on a Jetson AGX Orin 64 GB decodes at about 3–3.5 tokens/s.
    @Test func llama70BOnJetsonOrinDecodesAtPublishedRate() throws {
        let rate = ComputeModel.decodeRate(model: try model("llama-2-70b"), device: try device("jetson-agx-orin"), context: 256)
        #expect(rate >= 3.0 * 0.8 && rate <= 3.5 * 1.2, "rate \(rate) tok/s")
        // Roofline by hand: (34.5 GB + 256 · 327 680 B) / (0.55 · 204.8 GB/s) + 2 ms.
        let step = (34.5e9 + 256 * 327_680) / (0.55 * 204.8e9) + 0.002
        #expect(isRelativelyClose(rate, 1 / step, 1e-12))
        #expect(rate > 3.1 && rate < 3.4)
    }

    /// Llama-3-8B with 4-bit weights on a vehicle's Orin: about 26 tokens/s (published llama.cpp and
    /// MLC figures for 4-bit 7–8B models on AGX Orin are 20–40 tokens/s), four times FP16.
    @Test func llama8B4BitOnJetsonOrinIsFastEnoughOnBoard() throws {
        let orin = try device("jetson-agx-orin")
        let q4 = ComputeModel.decodeRate(model: try model("llama-3-8b-q4"), device: orin, context: 256)
        let fp16 = ComputeModel.decodeRate(model: try model("llama-3-8b"), device: orin, context: 256)
        #expect(q4 > 20 && q4 < 35, "rate \(q4) tok/s")
        #expect(q4 / fp16 > 3.5 && q4 / fp16 < 4.1)
        let answer = ComputeModel.inferenceTime(model: try model("llama-3-8b-q4"), device: orin, inputTokens: 256, outputTokens: 32)
        #expect(answer > 1 && answer < 2, "\(answer) s for 256 in, 32 out")
    }

    /// Published: Llama-2-13B 4-bit on an RTX 4090 decodes at about 100–110 tokens/s.
    @Test func llama13BOnRTX4090DecodesAtPublishedRate() throws {
        let rate = ComputeModel.decodeRate(model: try model("llama-2-13b"), device: try device("rtx-4090"), context: 256)
        #expect(rate >= 100 * 0.8 && rate <= 110 * 1.2, "rate \(rate) tok/s")
        let step = (6.5e9 + 256 * 819_200) / (0.75 * 1008e9) + 0.0005
        #expect(isRelativelyClose(rate, 1 / step, 1e-12))
        #expect(rate > 100 && rate < 110)
    }

    @Test func decodeSlowsAsTheContextGrows() throws {
        let m = try model("llama-2-13b"), d = try device("rtx-4090")
        let short = ComputeModel.decodeStepTime(model: m, device: d, context: 0)
        let long = ComputeModel.decodeStepTime(model: m, device: d, context: 4096)
        #expect(isRelativelyClose(long - short, 4096 * 819_200 / (0.75 * 1008e9), 1e-9))
        #expect(isRelativelyClose(short, 6.5e9 / (0.75 * 1008e9) + 0.0005))
    }

    @Test func prefillIsComputeBoundForLongPrompts() throws {
        let m = try model("llama-3-8b"), d = try device("rtx-4090")
        let computeBound = 2 * 8.03e9 * 2048 / (0.5 * 165e12)
        let memoryBound = m.weightBytes / (0.75 * 1008e9)
        #expect(computeBound > memoryBound)
        #expect(isRelativelyClose(ComputeModel.prefillTime(model: m, device: d, inputTokens: 2048), computeBound))
        // Linear in the prompt length once compute-bound.
        let t4096 = ComputeModel.prefillTime(model: m, device: d, inputTokens: 4096)
        #expect(isRelativelyClose(t4096, 2 * computeBound, 1e-12))
    }

    @Test func prefillIsMemoryBoundForShortPrompts() throws {
        let m = try model("llama-3-8b"), d = try device("rtx-4090")
        let memoryBound = m.weightBytes / (0.75 * 1008e9)
        for n in [1, 16, 64] {
            #expect(2 * 8.03e9 * Double(n) / (0.5 * 165e12) < memoryBound)
            #expect(isRelativelyClose(ComputeModel.prefillTime(model: m, device: d, inputTokens: n), memoryBound))
        }
        // The crossover lies between 64 and 2048 tokens and prefill never decreases with the prompt.
        var previous = 0.0
        for n in stride(from: 1, through: 4096, by: 37) {
            let t = ComputeModel.prefillTime(model: m, device: d, inputTokens: n)
            #expect(t >= previous)
            previous = t
        }
    }

    @Test(arguments: [(256, 32), (1, 1), (512, 200), (2048, 7)])
    func inferenceTimeIsPrefillPlusEveryDecodeStep(input: Int, output: Int) throws {
        for (m, d) in [(try model("llama-3-8b"), try device("rtx-4090")), (try model("llama-2-70b"), try device("jetson-agx-orin")),
                       (try model("llama-2-13b"), try device("a100-80gb"))] {
            var expected = ComputeModel.prefillTime(model: m, device: d, inputTokens: input)
            for i in 0..<output { expected += ComputeModel.decodeStepTime(model: m, device: d, context: input + i) }
            let got = ComputeModel.inferenceTime(model: m, device: d, inputTokens: input, outputTokens: output)
            #expect(isRelativelyClose(got, expected, 1e-9), "\(m.name) on \(d.name): \(got) vs \(expected)")
        }
    }

    @Test func inferenceWithoutOutputIsPrefillOnly() throws {
        let m = try model("llama-3-8b"), d = try device("a100-80gb")
        #expect(ComputeModel.inferenceTime(model: m, device: d, inputTokens: 300, outputTokens: 0)
                == ComputeModel.prefillTime(model: m, device: d, inputTokens: 300))
    }

    @Test func fitsComparesWeightsWithDeviceMemory() throws {
        let rtx = try device("rtx-4090"), orin = try device("jetson-agx-orin"), a100 = try device("a100-80gb")
        var fp16 = try model("llama-2-70b")
        fp16.name = "llama-2-70b-fp16"
        fp16.bytesPerParameter = 2
        #expect(fp16.weightBytes == 138e9)
        #expect(!ComputeModel.fits(model: fp16, device: rtx))
        #expect(!ComputeModel.fits(model: fp16, device: a100))
        // The 4-bit 70B (34.5 GB) fits the 64 GB Orin but not the 24 GB 4090.
        #expect(ComputeModel.fits(model: try model("llama-2-70b"), device: orin))
        #expect(!ComputeModel.fits(model: try model("llama-2-70b"), device: rtx))
        #expect(ComputeModel.fits(model: try model("llama-2-13b"), device: rtx))
        #expect(ComputeModel.fits(model: try model("llama-3-8b"), device: rtx))
        // Exactly the device's memory still fits.
        var exact = try model("llama-3-8b")
        exact.parameters = rtx.memoryBytes / exact.bytesPerParameter
        #expect(ComputeModel.fits(model: exact, device: rtx))
        exact.parameters *= 1.000001
        #expect(!ComputeModel.fits(model: exact, device: rtx))
    }
}
