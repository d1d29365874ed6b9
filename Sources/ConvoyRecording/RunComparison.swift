import Foundation

/// Key metrics of several runs side by side, as `convoy compare` prints them.
public struct RunComparison: Sendable {
    /// The metric names, in the order of the rows.
    public static let metrics = [
        "scenario", "seed", "policy", "requests", "completed %", "failed", "expired", "open", "p50 ms", "p95 ms", "p99 ms",
        "deadline met %", "attempts / request", "cache hits", "cost", "faults", "mean detection ms", "mean failover gap ms",
        "fine-tuning scheme", "fine-tuning rounds", "final held-out loss", "updates aggregated / lost",
        "link error p99 ms", "fidelity", "scheduling",
    ]

    /// The runs, in the order given: a column title and its report.
    public var runs: [(title: String, report: RunReport)]

    public init(runs: [(title: String, report: RunReport)]) {
        self.runs = runs
    }

    /// The values of one run's column, in the order of `metrics` ("-" where a value does not exist).
    public static func column(_ report: RunReport) -> [String] {
        let s = report.summary
        return [
            report.runInfo["scenario"] ?? "-", report.runInfo["seed"] ?? "-", report.runInfo["policy"] ?? "-", String(s.total),
            report.completedPercent.map { String(format: "%.1f", $0) } ?? "-",
            String(s.failed), String(s.expired), String(s.open),
            RunReport.ms(s.p50Ms), RunReport.ms(s.p95Ms), RunReport.ms(s.p99Ms),
            report.deadlineMetPercent.map { String(format: "%.1f", $0) } ?? "-",
            s.total > 0 ? String(format: "%.2f", Double(report.attemptCount) / Double(s.total)) : "-",
            String(report.cacheHits), String(format: "%.1f", report.cost),
            String(report.nodeFaults.count),
            RunReport.ms(report.meanDetectionSeconds.map { $0 * 1000 }),
            RunReport.ms(report.meanFailoverGapSeconds.map { $0 * 1000 }),
            report.fedTune?.scheme ?? "-", report.fedTune.map { String($0.rounds.count) } ?? "-",
            report.fedTune?.rounds.last(where: { $0.loss != nil })?.loss.map { String(format: "%.3f", $0) } ?? "-",
            report.fedTune.map { "\($0.outcomes["aggregated"] ?? 0) / \($0.outcomes["lost"] ?? 0)" } ?? "-",
            RunReport.ms(report.fidelity?.p99Ms), report.fidelity.map { $0.lost ? "LOST" : "held" } ?? "-",
            report.runInfo["scheduling"] ?? "-",
        ]
    }

    /// One row per metric, one column per run, titled by `runs[i].title`.
    public var text: String {
        var table = TextTable(["metric"] + runs.map(\.title))
        let columns = runs.map { Self.column($0.report) }
        for (index, metric) in Self.metrics.enumerated() {
            table.add([metric] + columns.map { $0[index] })
        }
        return table.render()
    }

    /// Short, distinct column titles for run directories: their last path components, or the
    /// paths as given when two last components are equal.
    public static func titles(for directories: [String]) -> [String] {
        let names = directories.map { path -> String in
            let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
            return trimmed.split(separator: "/").last.map(String.init) ?? trimmed
        }
        return Set(names).count == names.count ? names : directories
    }
}
