import ConvoyWire

/// Federated fine-tuning in a run's report: held-out loss and perplexity by round against emulated
/// time, what became of the updates, the bytes that crossed the links and the upload times.
public struct FedTuneSummary: Sendable, Equatable {
    public struct Round: Sendable, Equatable {
        public var round: Int
        public var endedAt: Double
        public var participants: Int
        public var aggregated: Int
        public var dropped: Int
        public var trainLoss: Double?
        /// Mean held-out loss over the clients (each on its own domain mix, with the model it uses).
        public var loss: Double?
        public var perplexity: Double?
    }

    public var scheme: String
    public var rounds: [Round]
    /// The vehicles' updates by outcome, and the bytes of those that arrived whole.
    public var outcomes: [String: Int]
    public var bytesUploaded: Int
    /// Hierarchical: the models the RSU groups handed up to the global level, and their bytes.
    public var groupUploads = 0
    public var groupBytesUploaded = 0
    public var uploadP50Seconds: Double?
    public var uploadP95Seconds: Double?
    /// Held-out loss per domain after the last evaluated round (clusters averaged).
    public var finalByDomain: [String: Double]
    /// Local trainings the real trainer finished after their emulated due time (fidelity misses),
    /// and by how much in all.
    public var trainingLate = 0
    public var trainingLateMs = 0

    /// Nil when the run had no federated fine-tuning.
    public init?(rounds: [FedRoundRecord], updates: [FedUpdateRecord], evals: [FedEvalRecord], counters: [CounterRecord] = []) {
        guard !rounds.isEmpty || !updates.isEmpty else { return nil }
        scheme = rounds.first?.scheme ?? "?"
        let mean = Dictionary(grouping: evals.filter { $0.domain == "*" }, by: \.round).mapValues { $0[0] }
        // One row per round: the global aggregation, or the clusters/groups added up.
        self.rounds = Dictionary(grouping: rounds, by: \.round).sorted { $0.key < $1.key }.map { round, rows in
            let top = rows.filter { $0.level == "global" }
            let use = top.isEmpty ? rows : top
            let losses = use.compactMap(\.trainLoss)
            return Round(round: round, endedAt: rows.map(\.endedAt).max()!, participants: use.reduce(0) { $0 + $1.participants },
                         aggregated: use.reduce(0) { $0 + $1.aggregated }, dropped: use.reduce(0) { $0 + $1.dropped },
                         trainLoss: losses.isEmpty ? nil : losses.reduce(0, +) / Double(losses.count),
                         loss: mean[round]?.loss, perplexity: mean[round]?.perplexity)
        }
        // Hierarchical: the groups' uploads to the global level are not the vehicles' updates.
        let groups = Set(rounds.filter { $0.level == "group" }.map(\.aggregatedAt))
        let byGroups = updates.filter { groups.contains($0.vehicleID) && $0.uploadEndedAt != nil }
        groupUploads = byGroups.count
        groupBytesUploaded = byGroups.reduce(0) { $0 + $1.bytes }
        let updates = updates.filter { !groups.contains($0.vehicleID) }
        outcomes = Dictionary(grouping: updates, by: \.outcome.rawValue).mapValues(\.count)
        bytesUploaded = updates.filter { $0.uploadEndedAt != nil }.reduce(0) { $0 + $1.bytes }
        let uploads = updates.compactMap { u in u.uploadEndedAt.flatMap { end in u.uploadStartedAt.map { end - $0 } } }.sorted()
        uploadP50Seconds = Statistics.percentile(50, ofSorted: uploads)
        uploadP95Seconds = Statistics.percentile(95, ofSorted: uploads)
        let last = evals.filter { $0.domain != "*" }.map(\.round).max()
        finalByDomain = Dictionary(grouping: evals.filter { $0.domain != "*" && $0.round == last }, by: \.domain)
            .mapValues { $0.reduce(0) { $0 + $1.loss } / Double($0.count) }
        trainingLate = counters.filter { $0.name == "fed_training_late" }.reduce(0) { $0 + $1.value }
        trainingLateMs = counters.filter { $0.name == "fed_training_late_ms" }.reduce(0) { $0 + $1.value }
    }

    public func text() -> String {
        var out = "\nFederated fine-tuning (\(scheme))\n"
        var table = TextTable(["round", "ended s", "clients", "aggregated", "dropped", "train loss", "held-out loss", "perplexity"])
        for r in rounds {
            table.add([String(r.round), RunReport.seconds(r.endedAt), String(r.participants), String(r.aggregated), String(r.dropped),
                       r.trainLoss.map { String(format: "%.3f", $0) } ?? "-", r.loss.map { String(format: "%.3f", $0) } ?? "-",
                       r.perplexity.map { String(format: "%.1f", $0) } ?? "-"])
        }
        out += table.render(indent: 2)
        out += "  updates: " + outcomes.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        out += "; " + String(format: "%.2f", Double(bytesUploaded) / 1e6) + " MB uploaded; upload (first chunk sent → last chunk at "
            + "the aggregator) p50 \(uploadP50Seconds.map(RunReport.seconds) ?? "-") s, p95 \(uploadP95Seconds.map(RunReport.seconds) ?? "-") s\n"
        if groupUploads > 0 {
            out += "  RSU groups: \(groupUploads) group models handed up to the global level, "
                + String(format: "%.2f", Double(groupBytesUploaded) / 1e6) + " MB over the backhaul\n"
        }
        out += trainingLate == 0
            ? "  training fidelity: every local training was done by its emulated due time\n"
            : "  training FIDELITY MISSES: \(trainingLate) local trainings finished after their emulated due time "
                + "(\(trainingLateMs) ms late in all): lower --speed until there are none\n"
        if !finalByDomain.isEmpty {
            out += "  last evaluation by domain: "
                + finalByDomain.sorted { $0.key < $1.key }.map { "\($0.key) " + String(format: "%.3f", $0.value) }.joined(separator: ", ") + "\n"
        }
        return out
    }
}
