import ConvoyWire

/// Split inference in a run, by task and split point (the requests of split tasks).
public struct SplitSummary: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var task: String
        /// Layers run on board (0: all remote; the model's layer count: all on board).
        public var k: Int
        public var requests: RunReport.PathStats
        /// Median bytes handed up (activations + KV cache), on-board stage and server compute, of completed requests.
        public var bytesP50: Double?
        public var lowerStageP50Ms: Double?
        public var upperStageP50Ms: Double?
    }

    public var rows: [Row]

    /// Nil when no request split.
    public init?(requests: [RequestRecord]) {
        let split = requests.filter { $0.splitK != nil }
        guard !split.isEmpty else { return nil }
        let byKey = Dictionary(grouping: split) { "\($0.task ?? "(none)")\u{0}\($0.splitK!)" }
        rows = byKey.values.map { group in
            let first = group[0], done = group.filter { $0.status == .completed }
            func median(_ values: [Double]) -> Double? { Statistics.percentile(50, ofSorted: values.sorted()) }
            return Row(task: first.task ?? "(none)", k: first.splitK!, requests: RunReport.groups(group) { _ in "" }[0],
                       bytesP50: median(done.compactMap { $0.splitBytes.map(Double.init) }),
                       lowerStageP50Ms: median(done.compactMap(\.lowerStageMs)), upperStageP50Ms: median(done.compactMap(\.computeMs)))
        }.sorted { ($0.task, $0.k) < ($1.task, $1.k) }
    }

    func text() -> String {
        var out = "\nSplit inference, by task and split point (k layers on board, the rest on the server)\n"
        var table = TextTable(["task", "k", "total", "completed", "failed", "expired", "p50 ms", "p99 ms", "bytes up p50",
                               "on-board p50 ms", "server p50 ms"])
        for r in rows {
            let p = r.requests
            table.add([r.task, String(r.k), String(p.total), String(p.completed), String(p.failed), String(p.expired),
                       RunReport.ms(p.p50Ms), RunReport.ms(p.p99Ms), r.bytesP50.map { String(Int($0)) } ?? "-",
                       RunReport.ms(r.lowerStageP50Ms), RunReport.ms(r.upperStageP50Ms)])
        }
        out += table.render(indent: 2)
        out += "  bytes up: the activations and KV cache at layer k, carried over every hop to the server (k = 0: the raw input)\n"
        return out
    }
}
