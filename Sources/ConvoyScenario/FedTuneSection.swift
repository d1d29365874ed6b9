import ConvoyCore
import ConvoyFederated
import ConvoyReasoning
import ConvoyWire

/// The scenario's `fedtune:` section (README, "Federated fine-tuning").
extension FedTuneConfig {
    /// The text domains the trainer builds from files every Debian machine has (tools/fedtune/data.py).
    public static let knownDomains = ["python", "c-headers", "licenses", "perl"]
    public static let trainerModels = ["smollm2", "tiny"]

    static func parse(_ f: inout YAMLFields, map: MapSpec) throws -> FedTuneConfig {
        var c = FedTuneConfig()
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _ fallback: T) throws -> T where T.RawValue == String {
            guard let text = try f.optionalString(key) else { return fallback }
            guard let v = T(rawValue: text) else {
                throw f.error(key, "expected one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), got '\(text)'")
            }
            return v
        }
        c.scheme = try choice("scheme", c.scheme)
        if var a = try f.nested("adapter") {
            let kind = try a.optionalString("kind") ?? c.adapter.rawValue
            guard let k = AdapterKind(rawValue: kind) else {
                throw a.error("kind", "expected one of \(AdapterKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(kind)'")
            }
            c.adapter = k
            c.rank = try a.int("rank", default: c.rank, min: 1, max: 256)
            c.loraAlpha = try a.double("alpha", default: c.loraAlpha, above: 0)
            let targets = try a.stringList("targets")
            if !targets.isEmpty { c.targets = targets }
            c.virtualTokens = try a.int("virtual_tokens", default: c.virtualTokens, min: 1, max: 512)
            try a.rejectUnknownKeys()
        }
        c.model = try f.optionalString("model") ?? c.model
        guard Self.trainerModels.contains(c.model) else {
            throw f.error("model", "expected one of \(Self.trainerModels.joined(separator: ", ")), got '\(c.model)'")
        }
        if var t = try f.nested("timing") {
            c.timingModel = try t.optionalString("model") ?? c.timingModel
            guard ModelProfile.catalog[c.timingModel] != nil else {
                throw t.error("model", "unknown model '\(c.timingModel)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            c.device = try t.optionalString("device") ?? c.device
            guard DeviceProfile.catalog[c.device] != nil else {
                throw t.error("device", "unknown device '\(c.device)' (known: \(DeviceProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            try t.rejectUnknownKeys()
        }
        c.rounds = try f.int("rounds", default: c.rounds, min: 1, max: 100_000)
        c.participantsPerRound = try f.int("participants_per_round", default: 0, min: 0, max: 100_000)
        c.localSteps = try f.int("local_steps", default: c.localSteps, min: 1, max: 10_000)
        c.batch = try f.int("batch", default: c.batch, min: 1, max: 4096)
        c.learningRate = try f.double("learning_rate", default: c.learningRate, above: 0, max: 10)
        c.sequenceLength = try f.int("sequence_length", default: c.sequenceLength, min: 8, max: 8192)
        c.domains = try f.stringList("domains")
        guard !c.domains.isEmpty else { throw f.error("domains", "missing: the text domains of the clients' data (known: \(Self.knownDomains.joined(separator: ", ")))") }
        for d in c.domains where !Self.knownDomains.contains(d) {
            throw f.error("domains", "unknown domain '\(d)' (known: \(Self.knownDomains.joined(separator: ", ")))")
        }
        guard Set(c.domains).count == c.domains.count else { throw f.error("domains", "a domain is listed twice") }
        let clients = try f.stringList("clients")
        guard !clients.isEmpty else { throw f.error("clients", "missing: the vehicles that take part") }
        guard Set(clients).count == clients.count else { throw f.error("clients", "a vehicle is listed twice") }
        var dominant = 1.0
        if var s = try f.nested("split") {
            dominant = try s.double("dominant", default: 0.8, min: 0, max: 1)
            try s.rejectUnknownKeys()
        }
        c.clients = Self.split(vehicles: clients, domains: c.domains, dominant: dominant)
        c.samplesPerClient = try f.int("samples_per_client", default: c.samplesPerClient, min: 1, max: 1_000_000)
        c.testSamplesPerDomain = try f.int("test_samples_per_domain", default: c.testSamplesPerDomain, min: 1, max: 1_000_000)
        c.aggregator = try f.string("aggregator")
        guard let role = map.role(of: c.aggregator), role != .vehicle else {
            throw f.error("aggregator", "'\(c.aggregator)' is not an RSU, edge server or the cloud of the map \(map.name)")
        }
        if c.scheme == .hierarchical, role == .rsu {
            throw f.error("aggregator", "hierarchical aggregates the groups at the RSUs and the global model above them: "
                          + "the aggregator must be an edge server or the cloud, not the RSU '\(c.aggregator)'")
        }
        c.startAt = try f.double("start_at", default: c.startAt, min: 0)
        c.roundDeadline = try f.double("round_deadline", default: c.roundDeadline, above: 0)
        c.kappa1 = try f.int("kappa1", default: c.kappa1, min: 1, max: 1000)
        c.kappa2 = try f.int("kappa2", default: c.kappa2, min: 1, max: 1000)
        if var s = try f.nested("staleness") {
            c.stalenessAlpha = try s.double("alpha", default: c.stalenessAlpha, above: 0, max: 1)
            c.stalenessExponent = try s.double("exponent", default: c.stalenessExponent, min: 0)
            c.maxStaleness = try s.int("max", default: c.maxStaleness, min: 0, max: 100_000)
            try s.rejectUnknownKeys()
        }
        if var b = try f.nested("buffer") {
            c.bufferSize = try b.int("size", default: c.bufferSize, min: 1, max: 10_000)
            c.serverRate = try b.double("server_rate", default: c.serverRate, above: 0)
            try b.rejectUnknownKeys()
        }
        c.evaluateEvery = try f.int("evaluate_every", default: c.evaluateEvery, min: 1, max: 100_000)
        c.clusters = try f.int("clusters", default: c.scheme == .clustered ? min(clients.count, c.domains.count) : 1, min: 1, max: 1000)
        guard c.clusters <= clients.count else {
            throw f.error("clusters", "\(c.clusters) clusters for \(clients.count) clients: at most one cluster per client")
        }
        c.clusterBy = try choice("cluster_by", c.clusterBy)
        c.chunkBytes = try f.int("chunk_bytes", default: c.chunkBytes, min: 1024, max: FedChunk.maxBytes)
        c.transferTimeout = try f.double("transfer_timeout", default: c.transferTimeout, above: 0)
        try f.rejectUnknownKeys()
        return c
    }

    /// Emulated seconds one local round takes on the vehicles' device: training costs about three
    /// forward passes over its tokens (forward + backward ≈ 3× forward), each a compute-bound
    /// prefill of the timing model on the device (`ComputeModel.prefillTime`).
    public var trainSeconds: Double {
        guard let model = ModelProfile.catalog[timingModel], let device = DeviceProfile.catalog[device] else { return 0 }
        return 3 * ComputeModel.prefillTime(model: model, device: device, inputTokens: tokensPerRound)
    }
}
