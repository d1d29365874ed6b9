import ConvoyCore
@testable import ConvoyRecording
import ConvoyWire
import Foundation
import GRDB
import Testing

/// A small run with known answers, built by hand.
///
/// - Nodes: rsu-1 crashes at 3.2 (incarnation 1, 0…3.2) and restarts at 6.0 (incarnation 2,
///   6…10); rsu-2 runs 0…10; vehicles v1 (0.2…9.9) and v2 (1.6…4.5).
/// - Faults: rsu-1 crash 3…6, rsu-2 hang 7…8.
/// - Requests (vehicle, created → finished, status, latency, path):
///   r1 v1 0.5→1.0 completed 500 rsu; r2 v1 1.2→1.5 completed 300 rsu; r3 v2 1.7→1.9 completed 200
///   macro; r9 v2 2.0→2.5 failed (out-of-range at rsu-1 before the fault); r4 v1 2.9→3.9
///   completed 1000 macro (rsu-1 target-dead at 3.3, then macro); r5 v2 3.0→4.0 expired (rsu-1
///   timeout at 3.35); r6 v1 5.0→5.5 completed 500 macro; r7 v1 7.2→8.1 completed 900 macro (rsu-2
///   target-dead at 7.6); r8 v1 9.5 open.
/// - Detections of `dead`: rsu-1 by v2 at 2.0 (before the fault), by v1 at 3.25 and 3.4, by v2
///   at 3.3, by v1 at 6.5 (after the fault); rsu-2 by v1 at 7.4.
struct SmallRun: ~Copyable {
    let dir: TemporaryDirectory
    var path: String { dir.file(RunDatabase.fileName) }

    init() throws {
        let dir = try TemporaryDirectory()
        try Self.fill(dir.file(RunDatabase.fileName))
        self.dir = dir
    }

    private static func fill(_ path: String) throws {
        let db = try RunDatabase(path: path)
        func request(_ id: String, _ vehicle: String, _ created: Double, _ status: RequestStatus?, _ finished: Double?,
                     latency: Double?, path: String?, servedBy: String? = nil, reason: String? = nil) -> RequestRecord {
            RequestRecord(requestID: id, vehicleID: vehicle, createdAt: created, deadlineAt: created + 1, model: "m",
                          inputTokens: 1, outputTokens: 1, payloadBytes: 1, status: status, finishedAt: finished,
                          servedBy: servedBy, path: path, attempts: 1, latencyMs: latency, reason: reason,
                          deadlineMet: status.map { $0 == .completed })
        }
        func attempt(_ id: String, _ n: Int, _ path: String, _ target: String, _ sent: Double, _ ended: Double?,
                     _ outcome: String) -> AttemptRecord {
            AttemptRecord(requestID: id, attempt: n, path: path, target: target, sentAt: sent, endedAt: ended, outcome: outcome)
        }
        try db.apply([RecordBatch(
            requests: [
                request("r1", "v1", 0.5, .completed, 1.0, latency: 500, path: "rsu", servedBy: "rsu-1"),
                request("r2", "v1", 1.2, .completed, 1.5, latency: 300, path: "rsu", servedBy: "rsu-1"),
                request("r3", "v2", 1.7, .completed, 1.9, latency: 200, path: "macro", servedBy: "cloud"),
                request("r9", "v2", 2.0, .failed, 2.5, latency: 500, path: nil, reason: "no path"),
                request("r4", "v1", 2.9, .completed, 3.9, latency: 1000, path: "macro", servedBy: "cloud"),
                request("r5", "v2", 3.0, .expired, 4.0, latency: 1000, path: nil, reason: "deadline"),
                request("r6", "v1", 5.0, .completed, 5.5, latency: 500, path: "macro", servedBy: "cloud"),
                request("r7", "v1", 7.2, .completed, 8.1, latency: 900, path: "macro", servedBy: "cloud"),
                request("r8", "v1", 9.5, nil, nil, latency: nil, path: nil),
            ],
            attempts: [
                attempt("r1", 1, "rsu", "rsu-1", 0.5, 1.0, "replied"),
                attempt("r2", 1, "rsu", "rsu-1", 1.2, 1.5, "replied"),
                attempt("r3", 1, "macro", "cloud", 1.7, 1.9, "replied"),
                attempt("r9", 1, "rsu", "rsu-1", 2.0, 2.4, "out-of-range"),
                attempt("r4", 1, "rsu", "rsu-1", 2.9, 3.3, "target-dead"),
                attempt("r4", 2, "macro", "cloud", 3.3, 3.9, "replied"),
                attempt("r5", 1, "rsu", "rsu-1", 3.0, 3.35, "timeout"),
                attempt("r6", 1, "macro", "cloud", 5.0, 5.5, "replied"),
                attempt("r7", 1, "rsu", "rsu-2", 7.2, 7.6, "target-dead"),
                attempt("r7", 2, "macro", "cloud", 7.6, 8.1, "replied"),
                attempt("r8", 1, "rsu", "rsu-1", 9.5, nil, "pending"),
            ],
            detections: [
                DetectionRecord(observer: "v2", peer: "rsu-1", state: "dead", at: 2.0),
                DetectionRecord(observer: "v1", peer: "rsu-1", state: "suspect", at: 3.15),
                DetectionRecord(observer: "v1", peer: "rsu-1", state: "dead", at: 3.25),
                DetectionRecord(observer: "v2", peer: "rsu-1", state: "dead", at: 3.3),
                DetectionRecord(observer: "v1", peer: "rsu-1", state: "dead", at: 3.4),
                DetectionRecord(observer: "v1", peer: "rsu-1", state: "dead", at: 6.5),
                DetectionRecord(observer: "v1", peer: "rsu-2", state: "dead", at: 7.4),
            ],
            counters: [CounterRecord(nodeID: "v1", name: "x", value: 1), CounterRecord(nodeID: "v2", name: "x", value: 2)])])
        try db.recordNodeStarted(NodeRow(nodeID: "rsu-1", role: .rsu, incarnation: 1, startedAt: 0, x: 0, y: 0))
        try db.recordNodeEnded(nodeID: "rsu-1", incarnation: 1, endedAt: 3.2, exitStatus: "killed by signal 9")
        try db.recordNodeStarted(NodeRow(nodeID: "rsu-1", role: .rsu, incarnation: 2, startedAt: 6.0, x: 0, y: 0))
        try db.recordNodeEnded(nodeID: "rsu-1", incarnation: 2, endedAt: 10, exitStatus: "exited 0")
        try db.recordNodeStarted(NodeRow(nodeID: "rsu-2", role: .rsu, incarnation: 1, startedAt: 0, x: 100, y: 0))
        try db.recordNodeEnded(nodeID: "rsu-2", incarnation: 1, endedAt: 10, exitStatus: "exited 0")
        try db.recordNodeStarted(NodeRow(nodeID: "v1", role: .vehicle, incarnation: 1, startedAt: 0.2))
        try db.recordNodeEnded(nodeID: "v1", incarnation: 1, endedAt: 9.9, exitStatus: "exited 0")
        try db.recordNodeStarted(NodeRow(nodeID: "v2", role: .vehicle, incarnation: 1, startedAt: 1.6))
        try db.recordNodeEnded(nodeID: "v2", incarnation: 1, endedAt: 4.5, exitStatus: "exited 0")
        _ = try db.recordFaultStarted(FaultRow(nodeID: "rsu-1", mode: "crash", startedAt: 3.0, endedAt: 6.0, source: "scenario"))
        _ = try db.recordFaultStarted(FaultRow(nodeID: "rsu-2", mode: "hang", startedAt: 7.0, endedAt: 8.0, source: "live"))
        try db.setMetadata("scenario", "small")
        try db.setMetadata("seed", "7")
        try db.setMetadata("duration", "10.0")
        try db.close()
    }
}

private func close(_ a: Double?, _ b: Double, tolerance: Double = 1e-9) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tolerance
}

@Suite struct ResultsTests {
    @Test func nearestRankPercentiles() {
        let values: [Double] = [5, 1, 4, 2, 3]
        #expect(Statistics.percentile(50, of: values) == 3)
        #expect(Statistics.percentile(20, of: values) == 1)
        #expect(Statistics.percentile(21, of: values) == 2)
        #expect(Statistics.percentile(95, of: values) == 5)
        #expect(Statistics.percentile(0, of: values) == 1)
        #expect(Statistics.percentile(100, of: values) == 5)
        #expect(Statistics.percentile(50, of: []) == nil)
        #expect(Statistics.mean([1, 2, 6]) == 3)
        #expect(Statistics.mean([]) == nil)
    }

    @Test func timeSeriesOfKnownRows() throws {
        let run = try SmallRun()
        let rows = try RunDatabase.openForReading(path: run.path).timeSeries()
        let expected: [TimeSeriesRow] = [
            TimeSeriesRow(second: 0, started: 1, vehiclesAlive: 1, rsusUp: 2),
            TimeSeriesRow(second: 1, started: 2, completed: 3, p50Ms: 300, p95Ms: 500, p99Ms: 500, vehiclesAlive: 1, rsusUp: 2),
            TimeSeriesRow(second: 2, started: 2, failed: 1, vehiclesAlive: 2, rsusUp: 2),
            TimeSeriesRow(second: 3, started: 1, completed: 1, p50Ms: 1000, p95Ms: 1000, p99Ms: 1000, vehiclesAlive: 2, rsusUp: 1),
            TimeSeriesRow(second: 4, expired: 1, vehiclesAlive: 1, rsusUp: 1),
            TimeSeriesRow(second: 5, started: 1, completed: 1, p50Ms: 500, p95Ms: 500, p99Ms: 500, vehiclesAlive: 1, rsusUp: 1),
            TimeSeriesRow(second: 6, vehiclesAlive: 1, rsusUp: 2),
            TimeSeriesRow(second: 7, started: 1, vehiclesAlive: 1, rsusUp: 1),
            TimeSeriesRow(second: 8, completed: 1, p50Ms: 900, p95Ms: 900, p99Ms: 900, vehiclesAlive: 1, rsusUp: 2),
            TimeSeriesRow(second: 9, started: 1, vehiclesAlive: 1, rsusUp: 2),
            TimeSeriesRow(second: 10, vehiclesAlive: 0, rsusUp: 0),
        ]
        #expect(rows.count == expected.count)
        for (row, want) in zip(rows, expected) { #expect(row == want) }
        #expect(TimeSeries.rows(requests: [], nodes: [], faults: []).isEmpty)
    }

    @Test func timeSeriesFile() throws {
        let run = try SmallRun()
        let out = run.dir.file("csv")
        let counts = try CSVExport.export(databasePath: run.dir.path, to: out, tables: ["timeseries"])
        #expect(counts == ["timeseries": 11])
        let text = try String(contentsOfFile: out + "/timeseries.csv", encoding: .utf8)
        let records = try #require(parseCSV(text))
        #expect(records.count == 12)
        #expect(records[0] == TimeSeries.columns)
        #expect(records[0] == ["second", "started", "completed", "failed", "expired", "p50_ms", "p95_ms", "p99_ms",
                               "vehicles_alive", "rsus_up"])
        #expect(records[2] == ["1", "2", "3", "0", "0", "300.0", "500.0", "500.0", "1", "2"])
        #expect(records[3] == ["2", "2", "0", "1", "0", "", "", "", "2", "2"])
    }

    /// Every time-filtered table keeps exactly the rows in [since, until], ends included.
    @Test func timeWindowExport() throws {
        let run = try SmallRun()
        let out = run.dir.file("window")
        let counts = try CSVExport.export(databasePath: run.path, to: out, tables: nil,
                                          window: TimeWindow(since: 2, until: 5))
        #expect(counts["requests"] == 4)    // r9 2.0, r4 2.9, r5 3.0, r6 5.0
        #expect(counts["attempts"] == 5)    // sent 2.0, 2.9, 3.0, 3.3, 5.0
        #expect(counts["detections"] == 5)  // 2.0, 3.15, 3.25, 3.3, 3.4
        #expect(counts["nodes"] == 0)       // none started in [2, 5]
        #expect(counts["faults"] == 1)
        #expect(counts["counters"] == 2)    // never filtered
        #expect(counts["run_info"] == 3)    // never filtered
        #expect(counts["timeseries"] == 4)  // seconds 2…5
        for (table, count) in counts {
            let text = try String(contentsOfFile: out + "/\(table).csv", encoding: .utf8)
            #expect(try #require(parseCSV(text)).count == count + 1, "\(table)")
        }
        let requests = try #require(parseCSV(try String(contentsOfFile: out + "/requests.csv", encoding: .utf8)))
        #expect(requests.dropFirst().map { $0[0] } == ["r9", "r4", "r5", "r6"])

        let open = try CSVExport.export(databasePath: run.path, to: run.dir.file("since"), tables: ["requests", "timeseries"],
                                        window: TimeWindow(since: 7.2))
        #expect(open == ["requests": 2, "timeseries": 3])  // r7, r8; seconds 8, 9, 10
        let upTo = try CSVExport.export(databasePath: run.path, to: run.dir.file("until"), tables: ["attempts"],
                                        window: TimeWindow(until: 0.5))
        #expect(upTo == ["attempts": 1])
    }

    @Test func reportOfKnownRows() throws {
        let run = try SmallRun()
        let report = try RunReport(database: try RunDatabase.openForReading(path: run.path))
        let s = report.summary
        #expect((s.completed, s.failed, s.expired, s.open, s.total) == (6, 1, 1, 1, 9))
        #expect((s.p50Ms, s.p95Ms, s.p99Ms) == (500, 1000, 1000))  // of 200 300 500 500 900 1000
        #expect(s.vehiclesWithRequests == 2)
        #expect((report.deadlineMet, report.finished) == (6, 8))
        #expect(report.deadlineMetPercent == 75)
        #expect(close(report.completedPercent, 600.0 / 9))

        #expect(report.paths.map(\.path) == ["(none)", "macro", "rsu"])
        var macro = RunReport.PathStats(path: "macro")
        macro.completed = 4
        (macro.p50Ms, macro.p95Ms, macro.p99Ms) = (500, 1000, 1000)  // of 200 500 900 1000
        #expect(report.paths[1] == macro)
        #expect(report.paths[2].completed == 2 && report.paths[2].p50Ms == 300)
        #expect((report.paths[0].failed, report.paths[0].expired, report.paths[0].open) == (1, 1, 1))
        #expect(report.servers.map(\.node) == ["cloud", "rsu-1"])
        #expect(report.reasons.map(\.reason) == ["deadline", "no path"])
        #expect(report.attemptOutcomes.first! == ("replied", 6))

        #expect(report.faults.count == 2)
        let crash = report.faults[0]
        #expect(crash.fault.nodeID == "rsu-1")
        #expect(crash.observers == 2)
        #expect(close(crash.detectionSeconds, 0.25))
        #expect(close(crash.detectionP50Seconds, 0.25))
        #expect(close(crash.detectionMaxSeconds, 0.3))
        #expect(crash.affectedVehicles == 2)   // v1 (target-dead), v2 (timeout); the out-of-range at 2.4 is before
        #expect(crash.recoveredVehicles == 1)  // v2 never completes again
        #expect(close(crash.gapMaxSeconds, 0.9))  // v1: r4 finished at 3.9
        let hang = report.faults[1]
        #expect(hang.observers == 1)
        #expect(close(hang.detectionSeconds, 0.4))
        #expect((hang.affectedVehicles, hang.recoveredVehicles) == (1, 1))
        #expect(close(hang.gapP50Seconds, 1.1))  // v1: r7 finished at 8.1
        #expect(close(report.meanDetectionSeconds, 0.325))
        #expect(close(report.meanFailoverGapSeconds, 1.0))

        let text = report.text(title: run.dir.path)
        #expect(text.contains("scenario small, seed 7"))
        #expect(text.contains("deadline met: 6 of 8 finished (75.0 %)"))
        #expect(text.contains("p50 500.0, p95 1000.0, p99 1000.0 ms"))
        let crashLine = try #require(text.split(separator: "\n").first { $0.hasPrefix("  rsu-1") && $0.contains("crash") })
        #expect(crashLine.split(separator: " ", omittingEmptySubsequences: true) ==
            ["rsu-1", "crash", "3.00", "6.00", "scenario", "250.0", "2", "250.0", "300.0", "2", "1", "900.0", "900.0"])
    }

    @Test func reportOfAnEmptyRun() throws {
        let dir = try TemporaryDirectory()
        try RunDatabase(path: dir.file(RunDatabase.fileName)).close()
        let report = try RunReport(database: try RunDatabase.openForReading(path: dir.path))
        #expect(report.summary.total == 0)
        #expect(report.completedPercent == nil && report.meanDetectionSeconds == nil)
        let text = report.text(title: "empty")
        #expect(text.contains("(no requests)"))
        #expect(text.contains("Faults\n  (none)"))
        #expect(RunComparison(runs: [("empty", report)]).text.contains("completed %"))
    }

    @Test func comparisonShowsBothRuns() throws {
        let run = try SmallRun()
        let a = try RunReport(database: try RunDatabase.openForReading(path: run.path))
        let emptyDir = try TemporaryDirectory()
        do {
            let db = try RunDatabase(path: emptyDir.file(RunDatabase.fileName))
            try db.apply([RecordBatch(requests: [makeRequest("x", status: .completed, latencyMs: 42)])])
            try db.setMetadata("scenario", "other")
            try db.setMetadata("scheduling", "normal")
            try db.close()
        }
        let b = try RunReport(database: try RunDatabase.openForReading(path: emptyDir.path))
        let text = RunComparison(runs: [("run-a", a), ("run-b", b)]).text
        let lines = text.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines[0] == ["metric", "run-a", "run-b"])
        func row(_ name: String) -> [String]? {
            lines.first { $0.joined(separator: " ").hasPrefix(name + " ") }.map { Array($0.suffix(2)) }
        }
        #expect(row("scenario") == ["small", "other"])
        #expect(row("seed") == ["7", "-"])
        #expect(row("requests") == ["9", "1"])
        #expect(row("completed %") == ["66.7", "100.0"])
        #expect(row("p50 ms") == ["500.0", "42.0"])
        #expect(row("deadline met %") == ["75.0", "100.0"])
        #expect(row("faults") == ["2", "0"])
        #expect(row("mean detection ms") == ["325.0", "-"])
        #expect(row("mean failover gap ms") == ["1000.0", "-"])
        // How the run was scheduled (real-time or not, "How it works", Scheduling); "-" before it was recorded.
        #expect(row("scheduling") == ["-", "normal"])
        #expect(lines.count == RunComparison.metrics.count + 1)
        #expect(RunComparison.titles(for: ["/a/x", "/b/y/"]) == ["x", "y"])
        #expect(RunComparison.titles(for: ["/a/x", "/b/x"]) == ["/a/x", "/b/x"])
    }

    @Test func reportRefusesWhatIsNotARun() throws {
        let dir = try TemporaryDirectory()
        #expect(throws: RecordingError.notARunDirectory(dir.path)) {
            try RunReport(database: try RunDatabase.openForReading(path: dir.path))
        }
        let path = dir.file(RunDatabase.fileName)
        try RunDatabase(path: path).close()
        let queue = try DatabaseQueue(path: path)
        try queue.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-future')") }
        try queue.close()
        let error = try #require(throws: RecordingError.self) { try RunDatabase.openForReading(path: dir.path) }
        #expect(error == .newerSchema(path: path, unknownMigrations: ["v99-future"]))
        #expect(error.description.contains("written by a newer version of Convoy"))
        #expect(throws: RecordingError.newerSchema(path: path, unknownMigrations: ["v99-future"])) {
            try CSVExport.export(databasePath: dir.path, to: dir.file("out"), tables: nil)
        }
    }

    /// A run recorded before later migrations existed stays readable: its tables export, the
    /// tables it lacks are skipped, and asking for one of them is a clear error.
    @Test func runOfAnOlderConvoy() throws {
        let v1Tables = ["nodes", "requests", "attempts", "faults", "detections", "counters", "run_info"]
        let later = CSVExport.tableNames.filter { !v1Tables.contains($0) }
        guard let absent = later.first else { return }  // nothing newer than v1 in this build
        let run = try SmallRun()
        let queue = try DatabaseQueue(path: run.path)
        try queue.write { db in
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier <> 'v1-initial'")
            for table in later { try db.execute(sql: "DROP TABLE \(table)") }
        }
        try queue.close()
        let db = try RunDatabase.openForReading(path: run.dir.path)
        #expect(db.missingMigrations == Array(Schema.makeMigrator().migrations.dropFirst()))
        #expect(try RunReport(database: db).summary.total == 9)
        let counts = try CSVExport.export(databasePath: run.dir.path, to: run.dir.file("old"), tables: nil)
        #expect(Set(counts.keys) == Set(v1Tables + ["timeseries"]))
        let error = try #require(throws: RecordingError.self) {
            try CSVExport.export(databasePath: run.dir.path, to: run.dir.file("old2"), tables: [absent])
        }
        #expect(error.description.contains("written by an older version of Convoy"))
    }
}
