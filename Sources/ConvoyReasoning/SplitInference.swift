/// Cloud-edge-end split inference (the paper's Section IV.B), as pure models: what a stage of k
/// transformer layers costs on a device, what crosses the link between two stages, and which
/// split point minimises a request's end-to-end latency. The nodes run the handoff mode
/// (`SplitStage`): the vehicle runs the lower stage on board, a server the upper one.
///
/// **Layers.** The roofline model's terms are all per layer (weights, FLOPs and KV cache are spread
/// evenly over the `layers` blocks; embeddings and the output head are counted in the layers, a
/// simplification), so a stage of n of the L layers takes n/L of the model's prefill and decode
/// work on its device, plus the device's fixed per-step overhead for every decode step it runs.
public enum LayerModel {
    /// Bytes per element of the activations that cross a split (FP16).
    public static let activationBytesPerElement = 2

    /// Prefill of layers `range` (0-based, of `model.layers`) for `inputTokens` on `device`.
    public static func prefillTime(layers range: Range<Int>, model: ModelProfile, device: DeviceProfile, inputTokens: Int) -> Double {
        guard !range.isEmpty else { return 0 }
        return share(range, model) * ComputeModel.prefillTime(model: model, device: device, inputTokens: inputTokens)
    }

    /// One decode step of layers `range` with `context` tokens in the KV cache.
    public static func decodeStepTime(layers range: Range<Int>, model: ModelProfile, device: DeviceProfile, context: Int) -> Double {
        guard !range.isEmpty else { return 0 }
        let streaming = ComputeModel.decodeStepTime(model: model, device: device, context: context) - device.stepOverhead
        return share(range, model) * streaming + device.stepOverhead
    }

    /// Every decode step of a request (the context grows by one per step).
    public static func decodeTime(layers range: Range<Int>, model: ModelProfile, device: DeviceProfile, inputTokens: Int,
                                  outputTokens: Int) -> Double {
        guard outputTokens > 0 else { return 0 }
        // Linear in the context: n × the step at the mean context.
        let meanContext = Double(inputTokens) + Double(outputTokens - 1) / 2
        let streaming = (model.weightBytes + model.kvBytesPerToken * meanContext) / (device.memoryEfficiency * device.memoryBandwidth)
        return Double(outputTokens) * (share(range, model) * streaming + (range.isEmpty ? 0 : device.stepOverhead))
    }

    /// Bytes of the activations of `tokens` tokens at a layer boundary: tokens × hidden size × 2.
    public static func activationBytes(model: ModelProfile, tokens: Int) -> Int {
        tokens * model.hiddenSize * activationBytesPerElement
    }

    /// Bytes of the KV cache of `layers` layers for `tokens` tokens.
    public static func kvCacheBytes(model: ModelProfile, layers: Int, tokens: Int) -> Int {
        Int((model.kvBytesPerToken * Double(tokens) * Double(layers) / Double(model.layers)).rounded())
    }

    private static func share(_ range: Range<Int>, _ model: ModelProfile) -> Double {
        Double(range.count) / Double(model.layers)
    }
}

/// How a request split at layer k runs.
public enum SplitMode: String, Sendable, Codable, CaseIterable {
    /// Both stages keep their layers for the whole request: the prompt's activations go up once,
    /// then every decode step sends one token's activations up and the sampled token back down
    /// (a round trip per generated token).
    case pipelined
    /// The lower stage runs the first k layers of the prefill and hands its activations and its
    /// KV cache of those layers up; the upper stage, which holds the whole model, finishes the
    /// prefill and decodes alone. One transfer up, no per-token round trips.
    case handoff
}

/// What a split request costs, stage by stage (seconds and bytes), for one split point.
public struct SplitPlan: Sendable, Equatable {
    /// Layers run on the lower tier (0: all remote, `layers`: all local).
    public var k: Int
    public var mode: SplitMode
    public var lowerCompute: Double
    public var upperCompute: Double
    /// Seconds on the link between the tiers, and bytes up and down over the whole request.
    public var transfer: Double
    public var bytesUp: Int
    public var bytesDown: Int
    public var total: Double { lowerCompute + upperCompute + transfer }
}

/// The link between the tiers and the load on them, as the requester sees it when it decides.
public struct SplitContext: Sendable, Equatable {
    /// Uplink and downlink rates (bits/s) and one-way latency (s) between the tiers.
    public var upRate: Double
    public var downRate: Double
    public var latency: Double
    /// Seconds a new job would wait on each tier (from the load it advertises).
    public var lowerWait: Double
    public var upperWait: Double

    public init(upRate: Double, downRate: Double, latency: Double, lowerWait: Double = 0, upperWait: Double = 0) {
        self.upRate = upRate
        self.downRate = downRate
        self.latency = latency
        self.lowerWait = lowerWait
        self.upperWait = upperWait
    }

    func up(_ bytes: Int) -> Double { latency + Double(bytes) * 8 / upRate }
    func down(_ bytes: Int) -> Double { latency + Double(bytes) * 8 / downRate }
}

/// One request to split: the model, its size, and the devices of the two tiers.
public struct SplitRequest: Sendable, Equatable {
    public var model: ModelProfile
    public var inputTokens: Int
    public var outputTokens: Int
    /// Bytes of the raw input (sent up when nothing runs below) and of the result (sent down).
    public var payloadBytes: Int
    public var resultBytes: Int
    public var lower: DeviceProfile
    public var upper: DeviceProfile

    public init(model: ModelProfile, inputTokens: Int, outputTokens: Int, payloadBytes: Int, resultBytes: Int, lower: DeviceProfile,
                upper: DeviceProfile) {
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.payloadBytes = payloadBytes
        self.resultBytes = resultBytes
        self.lower = lower
        self.upper = upper
    }

    /// The cost of splitting at `k`. k = 0 is today's remote path (the raw input up, the whole
    /// model above, the result down); k = `layers` is today's on-board path (nothing crosses).
    public func plan(k: Int, mode: SplitMode, context: SplitContext) -> SplitPlan {
        let layers = model.layers
        precondition((0...layers).contains(k))
        let n = inputTokens, m = outputTokens
        if k == layers {
            let compute = ComputeModel.inferenceTime(model: model, device: lower, inputTokens: n, outputTokens: m)
            return SplitPlan(k: k, mode: mode, lowerCompute: context.lowerWait + compute, upperCompute: 0, transfer: 0, bytesUp: 0,
                             bytesDown: 0)
        }
        if k == 0 {
            let compute = ComputeModel.inferenceTime(model: model, device: upper, inputTokens: n, outputTokens: m)
            return SplitPlan(k: 0, mode: mode, lowerCompute: 0, upperCompute: context.upperWait + compute,
                             transfer: context.up(payloadBytes) + context.down(resultBytes), bytesUp: payloadBytes,
                             bytesDown: resultBytes)
        }
        let below = 0..<k, above = k..<layers
        let lowerPrefill = LayerModel.prefillTime(layers: below, model: model, device: lower, inputTokens: n)
        let upperPrefill = LayerModel.prefillTime(layers: above, model: model, device: upper, inputTokens: n)
        let prompt = LayerModel.activationBytes(model: model, tokens: n)
        switch mode {
        case .pipelined:
            let stepUp = LayerModel.activationBytes(model: model, tokens: 1), stepDown = 4  // a token id
            let steps = max(0, m - 1)  // the first token comes out of the prefill
            let lower = LayerModel.decodeTime(layers: below, model: model, device: self.lower, inputTokens: n, outputTokens: m)
            let upper = LayerModel.decodeTime(layers: above, model: model, device: self.upper, inputTokens: n, outputTokens: m)
            let transfer = context.up(prompt) + Double(steps) * (context.up(stepUp) + context.down(stepDown)) + context.down(resultBytes)
            return SplitPlan(k: k, mode: mode, lowerCompute: context.lowerWait + lowerPrefill + lower,
                             upperCompute: context.upperWait + upperPrefill + upper, transfer: transfer,
                             bytesUp: prompt + steps * stepUp, bytesDown: steps * stepDown + resultBytes)
        case .handoff:
            let kv = LayerModel.kvCacheBytes(model: model, layers: k, tokens: n)
            let decode = LayerModel.decodeTime(layers: 0..<layers, model: model, device: upper, inputTokens: n, outputTokens: m)
            return SplitPlan(k: k, mode: mode, lowerCompute: context.lowerWait + lowerPrefill,
                             upperCompute: context.upperWait + upperPrefill + decode,
                             transfer: context.up(prompt + kv) + context.down(resultBytes), bytesUp: prompt + kv, bytesDown: resultBytes)
        }
    }
}

/// Chooses where to split a request (one new policy type per rule).
public protocol SplitPolicy: Sendable {
    func choose(_ request: SplitRequest, mode: SplitMode, context: SplitContext) -> SplitPlan
}

/// The scenario's fixed split point (clamped to the model's layers).
public struct FixedSplit: SplitPolicy {
    public var k: Int
    public init(k: Int) { self.k = k }

    public func choose(_ request: SplitRequest, mode: SplitMode, context: SplitContext) -> SplitPlan {
        request.plan(k: min(max(0, k), request.model.layers), mode: mode, context: context)
    }
}

/// The split point that minimises the estimated end-to-end latency from the current link and the
/// loads the tiers advertise (the Neurosurgeon / EdgeShard idea); ties go to the lower k (less
/// on the weaker tier). A lower tier that cannot hold its layers' weights is not considered for
/// the all-local extreme.
public struct LatencyMinimisingSplit: SplitPolicy {
    public init() {}

    public func choose(_ request: SplitRequest, mode: SplitMode, context: SplitContext) -> SplitPlan {
        let layers = request.model.layers
        let fitsBelow = { (k: Int) in request.model.weightBytes * Double(k) / Double(layers) <= request.lower.memoryBytes }
        var best: SplitPlan?
        for k in 0...layers where fitsBelow(k) {
            let plan = request.plan(k: k, mode: mode, context: context)
            if best == nil || plan.total < best!.total { best = plan }
        }
        return best ?? request.plan(k: 0, mode: mode, context: context)
    }
}

/// One stage of a split request as a compute runs it (the handoff mode the nodes carry out).
public enum SplitStage: Sendable, Hashable {
    /// The first k layers of the prefill (the lower tier): its output is the activations and the
    /// KV cache of those layers.
    case lower(k: Int)
    /// The prefill from layer k on, then the whole decode (the upper tier holds the whole model).
    case upper(from: Int)
    /// One stage of a model split across vehicles: these layers only, for the prefill and every
    /// decode step (the vehicle holds just this slice of the weights).
    case slice(Range<Int>)

    /// Seconds the stage takes on `device` (the roofline model, layer by layer).
    public func time(model: ModelProfile, device: DeviceProfile, inputTokens: Int, outputTokens: Int) -> Double {
        let layers = model.layers
        switch self {
        case .lower(let k):
            return LayerModel.prefillTime(layers: 0..<min(k, layers), model: model, device: device, inputTokens: inputTokens)
        case .upper(let k):
            return LayerModel.prefillTime(layers: min(k, layers)..<layers, model: model, device: device, inputTokens: inputTokens)
                + LayerModel.decodeTime(layers: 0..<layers, model: model, device: device, inputTokens: inputTokens,
                                        outputTokens: outputTokens)
        case .slice(let range):
            let range = range.clamped(to: 0..<layers)
            return LayerModel.prefillTime(layers: range, model: model, device: device, inputTokens: inputTokens)
                + LayerModel.decodeTime(layers: range, model: model, device: device, inputTokens: inputTokens, outputTokens: outputTokens)
        }
    }

    /// Whether the stage's weights fit in `device`'s memory (the lower stage holds k/L of them).
    public func fits(model: ModelProfile, device: DeviceProfile) -> Bool {
        switch self {
        case .lower(let k): model.weightBytes * Double(min(k, model.layers)) / Double(model.layers) <= device.memoryBytes
        case .upper: ComputeModel.fits(model: model, device: device)
        case .slice(let range): model.weightBytes * Double(range.clamped(to: 0..<model.layers).count) / Double(model.layers) <= device.memoryBytes
        }
    }

    /// Bytes the lower stage hands up: the prompt's activations at layer k and the KV cache of
    /// layers 0..<k.
    public static func handoffBytes(model: ModelProfile, k: Int, inputTokens: Int) -> Int {
        LayerModel.activationBytes(model: model, tokens: inputTokens) + LayerModel.kvCacheBytes(model: model, layers: k, tokens: inputTokens)
    }
}

/// A model split across `stages` vehicles (a pipeline over V2V): which layers each stage holds,
/// and what crosses each hop.
public enum PipelinePlan {
    /// The layers of the stage that starts at layer `from` when `remaining` stages (this one
    /// included) share the layers left: an even share, the earlier stages taking the remainder.
    public static func slice(from: Int, remaining: Int, layers: Int) -> Range<Int> {
        let left = layers - from
        let size = (left + remaining - 1) / max(1, remaining)
        return from..<min(layers, from + size)
    }

    /// Bytes one hop between stages carries: the prompt's activations, and one token's for every
    /// decode step after the first (sent as one transfer: the V2V hop's per-step access delay is
    /// not modelled).
    public static func hopBytes(model: ModelProfile, inputTokens: Int, outputTokens: Int) -> Int {
        LayerModel.activationBytes(model: model, tokens: inputTokens + max(0, outputTokens - 1))
    }
}
