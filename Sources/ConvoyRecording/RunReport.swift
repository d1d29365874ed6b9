import ConvoyWire
import Foundation

/// The summary of a run that `convoy report` prints and `convoy compare` sets side by side.
///
/// Built from one consistent snapshot of the run database (`init(database:)`) or from rows
/// (`init(snapshot:)`, for tests). All times are emulated seconds; latencies are milliseconds;
/// percentiles are nearest-rank (`Statistics.percentile`).
public struct RunReport: Sendable {
    /// The `run_info` entries (scenario, seed, convoy_version, …).
    public var runInfo: [String: String]
    /// Requests by status and latency percentiles of the completed ones.
    public var summary: RunSummary
    /// Requests whose `deadline_met` is 1, and requests with a terminal status (the denominator).
    public var deadlineMet: Int
    public var finished: Int
    /// Failed and expired requests by `reason` (NULL reasons as "(none)"), most frequent first.
    public var reasons: [(status: RequestStatus, reason: String, count: Int)]
    /// Requests by the `path` they were served on (NULL — never served — as "(none)"), by path name.
    public var paths: [PathStats]
    /// The same, by task of the scenario's mix (`path` holds the task name).
    public var tasks: [PathStats]
    /// Attempts sent, over all requests.
    public var attemptCount: Int
    /// Requests answered by a neighbour's shared result.
    public var cacheHits: Int
    /// Sum of the prices of every attempt sent (scenario `prices:`).
    public var cost: Double
    /// Completed requests by `served_by`, most first.
    public var servers: [(node: String, completed: Int)]
    /// Attempts by `outcome`, most first.
    public var attemptOutcomes: [(outcome: String, count: Int)]
    /// One entry per recorded fault, by fault id (the launcher's own outages included).
    public var faults: [FaultStats]
    /// `dead` detections of any peer, and those of them inside an outage of the launcher (the bus
    /// was down, so every peer fell silent at once: not node failures).
    /// Real model servers: measured figures per server node, and a few answers.
    public var modelServers: [ModelServerStats] = []
    public var sampleAnswers: [OutputRecord] = []
    /// Federated fine-tuning, when the run had it.
    public var fedTune: FedTuneSummary?
    public var split: SplitSummary?
    public var analytics: AnalyticsSummary?
    /// The emulation's own accuracy (read from the database; nil from a snapshot alone).
    public var fidelity: Fidelity?
    public var deadDetections = 0
    public var deadDetectionsInLauncherOutages = 0

    /// True when the run has no recorded result: its launcher stopped without finishing (killed,
    /// or the disk filled before the result could be written), or it is still running.
    public var hasNoResult: Bool { runInfo["result"] == nil }

    /// Counts and latency percentiles of the requests of one path.
    public struct PathStats: Sendable, Equatable {
        public var path: String
        public var completed = 0
        public var failed = 0
        public var expired = 0
        public var open = 0
        public var p50Ms: Double?
        public var p95Ms: Double?
        public var p99Ms: Double?
        public var total: Int { completed + failed + expired + open }

        public init(path: String) { self.path = path }
    }

    /// What a fault did and how the fleet reacted.
    ///
    /// The fault window is `[started_at, ended_at]` (to the end of the recording while the fault
    /// has no `ended_at`).
    ///
    /// - Detection: for each observer, its first `dead` detection of the faulted node inside the
    ///   window, minus `started_at`. `detectionSeconds` is the earliest over observers (the fleet's
    ///   detection time), `detectionP50Seconds` and `detectionMaxSeconds` summarise all observers.
    /// - Failover gap: the affected vehicles are those with an attempt addressed to the faulted
    ///   node (`attempts.target`) that ended (`ended_at`) inside the window with outcome
    ///   `target-dead`, `out-of-range` or `timeout`. A vehicle's gap is the `finished_at` of its
    ///   first completed request finished after `started_at`, minus `started_at`; a vehicle with no
    ///   such request counts as not recovered. Vehicles address RSUs and the cloud, so a fault of an
    ///   edge server usually has no affected vehicles by this rule.
    /// What one node's real model server did, as measured on the wall clock.
    public struct ModelServerStats: Sendable, Equatable {
        public var node: String
        public var calls: Int
        public var failed: Int
        public var emptyAnswers: Int
        public var ttftP50Ms: Double?
        public var ttftP95Ms: Double?
        public var decodeP50: Double?
        public var wallP50Ms: Double?
        public var lateP95Ms: Double?
        /// Failed calls by reason, most frequent first.
        public var failures: [Failure]

        public struct Failure: Sendable, Equatable {
            public var reason: String
            public var count: Int
        }

        init(node: String, outputs: [OutputRecord]) {
            self.node = node
            calls = outputs.count
            let ok = outputs.filter { $0.failure == nil }
            failed = calls - ok.count
            emptyAnswers = ok.filter { $0.answer.isEmpty }.count
            let ttft = ok.compactMap(\.ttftMs).sorted()
            ttftP50Ms = Statistics.percentile(50, ofSorted: ttft)
            ttftP95Ms = Statistics.percentile(95, ofSorted: ttft)
            decodeP50 = Statistics.percentile(50, ofSorted: ok.compactMap(\.decodeTokensPerS).sorted())
            wallP50Ms = Statistics.percentile(50, ofSorted: ok.map(\.wallMs).sorted())
            lateP95Ms = Statistics.percentile(95, ofSorted: ok.map(\.lateMs).sorted())
            let reasons = Dictionary(grouping: outputs.compactMap(\.failure), by: { $0 }).mapValues(\.count)
            failures = reasons.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { Failure(reason: $0.key, count: $0.value) }
        }
    }

    public struct FaultStats: Sendable, Equatable {
        public var fault: FaultRow
        /// Observers that declared the node dead inside the window.
        public var observers: Int
        public var detectionSeconds: Double?
        public var detectionP50Seconds: Double?
        public var detectionMaxSeconds: Double?
        public var affectedVehicles: Int
        /// Affected vehicles with a completed request after the fault started.
        public var recoveredVehicles: Int
        /// Over the recovered vehicles' gaps; nil when none recovered.
        public var gapMeanSeconds: Double?
        public var gapP50Seconds: Double?
        public var gapMaxSeconds: Double?
        /// Every recovered vehicle's gap (for means over several faults).
        public var gapsSeconds: [Double]
    }

    /// Attempt outcomes that mean the target was lost rather than that it answered.
    /// Request counts and completed-latency percentiles per value of `key`, sorted by it.
    static func groups(_ requests: [RequestRecord], key: (RequestRecord) -> String) -> [PathStats] {
        var stats: [String: PathStats] = [:]
        var latencies: [String: [Double]] = [:]
        for r in requests {
            let k = key(r)
            var s = stats[k] ?? PathStats(path: k)
            switch r.status {
            case nil: s.open += 1
            case .completed?:
                s.completed += 1
                if let latency = r.latencyMs { latencies[k, default: []].append(latency) }
            case .failed?: s.failed += 1
            case .expired?: s.expired += 1
            }
            stats[k] = s
        }
        for (k, values) in latencies {
            let sorted = values.sorted()
            stats[k]?.p50Ms = Statistics.percentile(50, ofSorted: sorted)
            stats[k]?.p95Ms = Statistics.percentile(95, ofSorted: sorted)
            stats[k]?.p99Ms = Statistics.percentile(99, ofSorted: sorted)
        }
        return stats.values.sorted { $0.path < $1.path }
    }

    public static let lostTargetOutcomes: Set<String> = ["target-dead", "out-of-range", "timeout"]

    /// Reads the database (one snapshot) and computes the report.
    public init(database: RunDatabase) throws {
        self.init(snapshot: try database.snapshot())
        fidelity = try database.fidelity()
    }

    /// Computes the report from the rows of a run.
    public init(snapshot: RunSnapshot) {
        runInfo = snapshot.runInfo
        modelServers = Dictionary(grouping: snapshot.outputs, by: \.servedBy).sorted { $0.key < $1.key }
            .map { ModelServerStats(node: $0.key, outputs: $0.value) }
        sampleAnswers = Array(snapshot.outputs.filter { $0.failure == nil && !$0.answer.isEmpty }.prefix(3))
        fedTune = FedTuneSummary(rounds: snapshot.fedRounds, updates: snapshot.fedUpdates, evals: snapshot.fedEvals,
                                 counters: snapshot.counters)
        split = SplitSummary(requests: snapshot.requests)
        analytics = AnalyticsSummary(cells: snapshot.analyticsCells, counters: snapshot.counters)
        let requests = snapshot.requests

        var summary = RunSummary(completed: 0, failed: 0, expired: 0, open: 0, p50Ms: nil, p95Ms: nil, p99Ms: nil,
                                 vehiclesWithRequests: Set(requests.map(\.vehicleID)).count)
        var latencies: [Double] = []
        var reasonCounts: [String: Int] = [:]   // "status\u{0}reason"
        var servedBy: [String: Int] = [:]
        deadlineMet = 0
        finished = 0
        cacheHits = 0
        cost = 0
        for r in requests {
            switch r.status {
            case nil:
                summary.open += 1
            case .completed?:
                summary.completed += 1
                if let latency = r.latencyMs { latencies.append(latency) }
                servedBy[r.servedBy ?? "(none)", default: 0] += 1
                if r.cacheHit == true { cacheHits += 1 }
            case .failed?:
                summary.failed += 1
            case .expired?:
                summary.expired += 1
            }
            cost += r.cost ?? 0
            if let status = r.status {
                finished += 1
                if r.deadlineMet == true { deadlineMet += 1 }
                if status != .completed { reasonCounts[status.rawValue + "\u{0}" + (r.reason ?? "(none)"), default: 0] += 1 }
            }
        }
        latencies.sort()
        summary.p50Ms = Statistics.percentile(50, ofSorted: latencies)
        summary.p95Ms = Statistics.percentile(95, ofSorted: latencies)
        summary.p99Ms = Statistics.percentile(99, ofSorted: latencies)
        self.summary = summary
        paths = Self.groups(requests) { $0.path ?? "(none)" }
        tasks = Self.groups(requests) { $0.task ?? "(none)" }
        reasons = reasonCounts.map { key, count in
            let parts = key.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            return (RequestStatus(rawValue: String(parts[0]))!, String(parts[1]), count)
        }.sorted { ($0.count, $1.reason) > ($1.count, $0.reason) }
        servers = servedBy.map { ($0.key, $0.value) }.sorted { ($0.completed, $1.node) > ($1.completed, $0.node) }
        var outcomes: [String: Int] = [:]
        for a in snapshot.attempts { outcomes[a.outcome, default: 0] += 1 }
        attemptCount = snapshot.attempts.count
        attemptOutcomes = outcomes.map { ($0.key, $0.value) }.sorted { ($0.count, $1.outcome) > ($1.count, $0.outcome) }
        faults = Self.faultStats(snapshot)
        let outages = snapshot.faults.filter { $0.mode == FaultRow.launcherOutage }
        for d in snapshot.detections where d.state == "dead" {
            deadDetections += 1
            if outages.contains(where: { d.at >= $0.startedAt && d.at <= ($0.endedAt ?? .infinity) + Self.outageSlack }) {
                deadDetectionsInLauncherOutages += 1
            }
        }
    }

    /// Detections this long after a launcher outage ended still belong to it (records in flight).
    static let outageSlack = 0.5

    private static func faultStats(_ snapshot: RunSnapshot) -> [FaultStats] {
        let vehicleOf = Dictionary(snapshot.requests.map { ($0.requestID, $0.vehicleID) }, uniquingKeysWith: { a, _ in a })
        // Each vehicle's completion times, ascending.
        var completions: [String: [Double]] = [:]
        for r in snapshot.requests where r.status == .completed {
            if let finished = r.finishedAt { completions[r.vehicleID, default: []].append(finished) }
        }
        for key in completions.keys { completions[key]!.sort() }

        return snapshot.faults.map { fault in
            let start = fault.startedAt
            let end = fault.endedAt ?? .infinity
            var firstDead: [String: Double] = [:]
            // A launcher outage silences every peer: all its dead detections are its own.
            let isOutage = fault.mode == FaultRow.launcherOutage
            for d in snapshot.detections where (isOutage || d.peer == fault.nodeID) && d.state == "dead" && d.at >= start
                && d.at <= end + (isOutage ? outageSlack : 0) {
                firstDead[d.observer] = min(firstDead[d.observer] ?? .infinity, d.at)
            }
            let delays = firstDead.values.map { $0 - start }.sorted()

            var affected = Set<String>()
            for a in snapshot.attempts where a.target == fault.nodeID && lostTargetOutcomes.contains(a.outcome) {
                guard let ended = a.endedAt, ended >= start, ended <= end, let vehicle = vehicleOf[a.requestID] else { continue }
                affected.insert(vehicle)
            }
            var gaps: [Double] = []
            for vehicle in affected {
                if let next = completions[vehicle]?.first(where: { $0 > start }) { gaps.append(next - start) }
            }
            gaps.sort()
            return FaultStats(
                fault: fault, observers: delays.count, detectionSeconds: delays.first,
                detectionP50Seconds: Statistics.percentile(50, ofSorted: delays), detectionMaxSeconds: delays.last,
                affectedVehicles: affected.count, recoveredVehicles: gaps.count,
                gapMeanSeconds: Statistics.mean(gaps), gapP50Seconds: Statistics.percentile(50, ofSorted: gaps),
                gapMaxSeconds: gaps.last, gapsSeconds: gaps)
        }
    }

    // MARK: - Headline figures

    /// Completed requests as a percentage of all requests; nil without requests.
    public var completedPercent: Double? {
        summary.total == 0 ? nil : 100 * Double(summary.completed) / Double(summary.total)
    }

    /// Requests that met their deadline as a percentage of the finished ones; nil when none finished.
    public var deadlineMetPercent: Double? {
        finished == 0 ? nil : 100 * Double(deadlineMet) / Double(finished)
    }

    /// The mean over faults of their (earliest-observer) detection time; faults never detected are
    /// left out. nil when no fault was detected.
    public var meanDetectionSeconds: Double? {
        Statistics.mean(nodeFaults.compactMap(\.detectionSeconds))
    }

    /// The mean failover gap over every (fault, recovered vehicle) pair; nil when there is none.
    public var meanFailoverGapSeconds: Double? {
        Statistics.mean(nodeFaults.flatMap(\.gapsSeconds))
    }

    /// The faults of nodes (injected), without the launcher's own outages.
    public var nodeFaults: [FaultStats] { faults.filter { $0.fault.mode != FaultRow.launcherOutage } }

    // MARK: - Text

    /// The report as printed by `convoy report`: plain text, aligned columns, one trailing newline.
    /// `stillRunning`: the run's launcher is alive (a run without a result is then in progress,
    /// not cut short).
    public func text(title: String, stillRunning: Bool = false) -> String {
        var out = "Run \(title)\n"
        let info = [("scenario", "scenario %@"), ("seed", "seed %@"), ("duration", "duration %@ s"),
                    ("speed", "speed %@"), ("convoy_version", "convoy %@"), ("result", "result %@")]
            .compactMap { key, format in runInfo[key].map { format.replacingOccurrences(of: "%@", with: $0) } }
        if !info.isEmpty { out += "  " + info.joined(separator: ", ") + "\n" }
        if hasNoResult {
            out += stillRunning
                ? "  this run is still in progress: the figures below are what was recorded so far\n"
                : "  this run was CUT SHORT: its launcher stopped before finishing (killed, or its disk filled), so no result "
                    + "was recorded;\n  \(summary.open) requests were left without a status (shown as open below)\n"
        }
        if let lost = runInfo["records_lost"], lost != "0" {
            out += "  \(lost) records could not be written (the run database stopped taking writes)\n"
        }

        out += "\nRequests\n"
        var status = TextTable(["status", "count", "%"])
        let total = summary.total
        for (name, count) in [("completed", summary.completed), ("failed", summary.failed),
                              ("expired", summary.expired), ("open", summary.open)] {
            status.add([name, String(count), Self.percent(count, of: total)])
        }
        status.add(["total", String(total), ""])
        out += status.render(indent: 2)
        out += "  deadline met: \(deadlineMet) of \(finished) finished (\(Self.percent(deadlineMet, of: finished)) %)\n"
        out += "  vehicles with requests: \(summary.vehiclesWithRequests)\n"
        out += "  latency of completed requests: p50 \(Self.ms(summary.p50Ms)), p95 \(Self.ms(summary.p95Ms)), "
            + "p99 \(Self.ms(summary.p99Ms)) ms\n"
        if !reasons.isEmpty {
            out += "\nFailed and expired, by reason\n"
            var table = TextTable(["status", "reason", "count"])
            for r in reasons { table.add([r.status.rawValue, r.reason, String(r.count)]) }
            out += table.render(indent: 2)
        }

        for (title, column, groups) in [("By path", "path", paths), ("By task", "task", tasks)] {
            out += "\n\(title)\n"
            var table = TextTable([column, "total", "completed", "failed", "expired", "open", "p50 ms", "p95 ms", "p99 ms"])
            for p in groups {
                table.add([p.path, String(p.total), String(p.completed), String(p.failed), String(p.expired), String(p.open),
                           Self.ms(p.p50Ms), Self.ms(p.p95Ms), Self.ms(p.p99Ms)])
            }
            out += groups.isEmpty ? "  (no requests)\n" : table.render(indent: 2)
        }
        if cacheHits > 0 || cost > 0 {
            out += "  cache hits (a neighbour's shared result): \(cacheHits); cost of the attempts sent: "
                + String(format: "%.1f", cost) + "\n"
        }
        if !servers.isEmpty {
            out += "\nCompleted, by server\n"
            var table = TextTable(["served by", "completed"])
            for s in servers { table.add([s.node, String(s.completed)]) }
            out += table.render(indent: 2)
        }
        if !attemptOutcomes.isEmpty {
            out += "\nAttempts by outcome: "
                + attemptOutcomes.map { "\($0.outcome) \($0.count)" }.joined(separator: ", ") + "\n"
        }

        if !modelServers.isEmpty {
            out += "\nModel servers (measured on the wall clock)\n"
            var table = TextTable(["node", "calls", "failed", "empty", "TTFT p50 ms", "TTFT p95 ms", "decode tok/s p50",
                                   "call p50 ms", "late p95 ms"])
            for m in modelServers {
                table.add([m.node, String(m.calls), String(m.failed), String(m.emptyAnswers), Self.ms(m.ttftP50Ms), Self.ms(m.ttftP95Ms),
                           Self.ms(m.decodeP50), Self.ms(m.wallP50Ms), Self.ms(m.lateP95Ms)])
            }
            out += table.render(indent: 2)
            for m in modelServers where !m.failures.isEmpty {
                out += "  \(m.node) failed calls: " + m.failures.map { "\($0.reason) \($0.count)" }.joined(separator: ", ") + "\n"
            }
            out += "  late: how much later than its emulated due time an answer came (the emulation could not hold it)\n"
            for sample in sampleAnswers {
                out += "  \(sample.requestID) (\(sample.servedBy)): \(Self.quote(sample.prompt, 70)) → \(Self.quote(sample.answer, 100))\n"
            }
        }

        if let fidelity { out += fidelity.text(speed: runInfo["speed"].flatMap(Double.init)) }
        if let split { out += split.text() }
        if let analytics { out += analytics.text() }
        if let fedTune { out += fedTune.text() }

        out += "\nFaults\n"
        if faults.isEmpty {
            out += "  (none)\n"
        } else {
            var table = TextTable(["node", "mode", "start s", "end s", "source", "detected ms", "observers",
                                   "det p50 ms", "det max ms", "affected", "recovered", "gap p50 ms", "gap max ms"])
            for f in faults {
                table.add([f.fault.nodeID, f.fault.mode, Self.seconds(f.fault.startedAt),
                           f.fault.endedAt.map(Self.seconds) ?? "-", f.fault.source,
                           Self.ms(f.detectionSeconds.map { $0 * 1000 }), String(f.observers),
                           Self.ms(f.detectionP50Seconds.map { $0 * 1000 }), Self.ms(f.detectionMaxSeconds.map { $0 * 1000 }),
                           String(f.affectedVehicles), String(f.recoveredVehicles),
                           Self.ms(f.gapP50Seconds.map { $0 * 1000 }), Self.ms(f.gapMaxSeconds.map { $0 * 1000 })])
            }
            out += table.render(indent: 2)
            out += "  detected: first `dead` detection by any observer after the fault started; gap: fault start to\n"
                + "  the next completed request of each vehicle whose attempt to the node was lost during the fault.\n"
            if faults.contains(where: { $0.fault.mode == FaultRow.launcherOutage }) {
                out += "  launcher-outage: the launcher (and the bus it hosts) did not run; its observers are the nodes that\n"
                    + "  declared any peer dead meanwhile.\n"
            }
        }
        if deadDetectionsInLauncherOutages > 0 {
            out += "  \(deadDetections) peers declared dead; \(deadDetectionsInLauncherOutages) of them during launcher outages "
                + "(not node failures)\n"
        }
        return out
    }

    static func ms(_ value: Double?) -> String {
        value.map { String(format: "%.1f", $0) } ?? "-"
    }

    static func seconds(_ value: Double) -> String { String(format: "%.2f", value) }

    /// `text` on one line, quoted, cut to `limit` characters.
    static func quote(_ text: String, _ limit: Int) -> String {
        let line = text.replacingOccurrences(of: "\n", with: " ").trimmingCharacters(in: .whitespaces)
        return "\"" + (line.count > limit ? line.prefix(limit) + "…" : line) + "\""
    }

    static func percent(_ part: Int, of whole: Int) -> String {
        whole == 0 ? "-" : String(format: "%.1f", 100 * Double(part) / Double(whole))
    }
}

/// A plain-text table: the first column left-aligned, the others right-aligned, two spaces apart.
struct TextTable {
    private var rows: [[String]]

    init(_ header: [String]) { rows = [header] }

    mutating func add(_ row: [String]) { rows.append(row) }

    func render(indent: Int = 0) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        let pad = String(repeating: " ", count: indent)
        return rows.map { row in
            let cells = row.enumerated().map { index, cell in
                let fill = String(repeating: " ", count: widths[index] - cell.count)
                return index == 0 ? cell + fill : fill + cell
            }
            return pad + cells.joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }.joined(separator: "\n") + "\n"
    }
}
