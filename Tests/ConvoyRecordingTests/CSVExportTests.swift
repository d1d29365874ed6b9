import ConvoyCore
import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

@Suite struct CSVExportTests {
    /// Identifiers that need quoting, or are not ASCII.
    static let trickyIDs = [
        "plain", "with,comma", "with \"quotes\"", "line\nfeed", "carriage\rreturn", "crlf\r\ninside",
        "ünïcödé-車両-🚗", "\"", ",", "", " spaces ", "e\u{301}",  // e + combining accent
    ]

    private func fillDatabase(at path: String) throws -> RunDatabase {
        let db = try RunDatabase(path: path)
        var requests: [RequestRecord] = []
        var attempts: [AttemptRecord] = []
        for (index, id) in Self.trickyIDs.enumerated() {
            let vehicle = "v,\(index % 3)"
            requests.append(makeRequest(id, vehicle: vehicle, createdAt: Double(index) * 0.1))
            attempts.append(AttemptRecord(requestID: id, attempt: 1, path: "rsu", target: "rsu\"1\"",
                                          sentAt: Double(index) * 0.1 + 0.01, outcome: "pending"))
        }
        try db.apply([RecordBatch(requests: requests, attempts: attempts)])
        // Finish some: completed with every optional column set, and expired with a multi-line reason.
        var finished = makeRequest(Self.trickyIDs[1], vehicle: "v,1", createdAt: 0.1, status: .completed,
                                   latencyMs: 123.456)
        finished.queueWaitMs = 1e-5
        finished.computeMs = 100
        finished.networkMs = 23.456
        var expired = makeRequest(Self.trickyIDs[6], vehicle: "v,0", createdAt: 0.6000000000000001,
                                  status: .expired, latencyMs: 501)
        expired.reason = "deadline passed,\n\"no reply\""
        expired.deadlineMet = false
        try db.apply([RecordBatch(
            requests: [finished, expired],
            attempts: [AttemptRecord(requestID: Self.trickyIDs[1], attempt: 1, path: "rsu", target: "rsu\"1\"",
                                     sentAt: 0.11, endedAt: 0.2, outcome: "replied", detail: "ok, fine")],
            detections: [DetectionRecord(observer: "rsu,1", peer: "edge\n1", state: "suspect", at: 2.5),
                         DetectionRecord(observer: "rsu1", peer: "edge1", state: "dead", at: 3)],
            counters: [CounterRecord(nodeID: "v,1", name: "frames \"dropped\"", value: -3),
                       CounterRecord(nodeID: "ñ", name: "x", value: Int.max)])])
        try db.recordNodeStarted(NodeRow(nodeID: "rsu,1", role: .rsu, incarnation: 1, pid: 17, startedAt: 0,
                                         x: -1.5, y: 1e10))
        try db.recordNodeStarted(NodeRow(nodeID: "v\n1", role: .vehicle, incarnation: 1, startedAt: 0.5))
        try db.recordNodeEnded(nodeID: "v\n1", incarnation: 1, endedAt: 7, exitStatus: "exited 0")
        let fault = try db.recordFaultStarted(FaultRow(nodeID: "edge1", mode: "kill", startedAt: 4,
                                                       source: "live", detail: "typed \"kill edge1\", twice"))
        try db.recordFaultEnded(id: fault, endedAt: 4.5)
        _ = try db.recordFaultStarted(FaultRow(nodeID: "rsu2", mode: "partition", startedAt: 5, source: "scenario"))
        try db.setMetadata("scenario", "city, \"centre\".yaml")
        try db.setMetadata("seed", "42")
        return db
    }

    private func readCSV(_ path: String) throws -> (header: [String], rows: [[String]]) {
        let data = try #require(FileManager.default.contents(atPath: path))
        let text = try #require(String(data: data, encoding: .utf8))
        #expect(text.hasSuffix("\r\n"))
        let records = try #require(parseCSV(text), "not RFC 4180: \(path)")
        let header = try #require(records.first)
        for record in records { #expect(record.count == header.count) }
        return (header, Array(records.dropFirst()))
    }

    @Test func roundTripOfEveryTable() throws {
        let dir = try TemporaryDirectory()
        let db = try fillDatabase(at: dir.file(RunDatabase.fileName))
        let out = dir.file("export/nested")
        let counts = try CSVExport.export(databasePath: dir.file(RunDatabase.fileName), to: out, tables: nil)
        #expect(Set(counts.keys) == Set(CSVExport.exportNames))
        #expect(CSVExport.exportNames == CSVExport.tableNames + ["timeseries"])
        #expect(Array(CSVExport.tableNames.prefix(7)) ==
            ["nodes", "requests", "attempts", "faults", "detections", "counters", "run_info"])

        let requests = try readCSV(out + "/requests.csv")
        #expect(requests.header == ["request_id", "vehicle_id", "created_at", "deadline_at", "model", "input_tokens",
                                    "output_tokens", "payload_bytes", "status", "finished_at", "served_by", "path",
                                    "attempts", "latency_ms", "reason", "queue_wait_ms", "compute_ms", "network_ms",
                                    "deadline_met", "task", "cache_hit", "cost", "split_k", "split_bytes", "lower_stage_ms"])
        let expectedRequests = try db.fetchRequests().map { r in
            [r.requestID, r.vehicleID, csv(r.createdAt), csv(r.deadlineAt), r.model, csv(r.inputTokens),
             csv(r.outputTokens), csv(r.payloadBytes), csv(r.status?.rawValue), csv(r.finishedAt), csv(r.servedBy),
             csv(r.path), csv(r.attempts), csv(r.latencyMs), csv(r.reason), csv(r.queueWaitMs), csv(r.computeMs),
             csv(r.networkMs), csv(r.deadlineMet), csv(r.task), csv(r.cacheHit), csv(r.cost), csv(r.splitK), csv(r.splitBytes),
             csv(r.lowerStageMs)]
        }
        #expect(requests.rows == expectedRequests)
        #expect(counts["requests"] == Self.trickyIDs.count)
        #expect(Set(requests.rows.map { $0[0] }) == Set(Self.trickyIDs))
        // Values parse back to what was recorded.
        let finished = try #require(requests.rows.first { $0[0] == "with,comma" })
        #expect(finished[8] == "completed")
        #expect(Double(finished[13]) == 123.456)
        #expect(Double(finished[15]) == 1e-5)
        #expect(finished[18] == "1")
        let expired = try #require(requests.rows.first { $0[0] == "ünïcödé-車両-🚗" })
        #expect(Double(expired[2]) == 0.6000000000000001)
        #expect(expired[14] == "deadline passed,\n\"no reply\"")
        #expect(expired[18] == "0")
        let open = try #require(requests.rows.first { $0[0] == "plain" })
        #expect(open[8] == "" && open[9] == "" && open[18] == "")

        let attempts = try readCSV(out + "/attempts.csv")
        #expect(attempts.header == ["request_id", "attempt", "path", "target", "sent_at", "ended_at", "outcome", "detail"])
        #expect(attempts.rows == (try db.fetchAttempts().map { a in
            [a.requestID, csv(a.attempt), a.path, a.target, csv(a.sentAt), csv(a.endedAt), a.outcome, csv(a.detail)]
        }))

        let nodes = try readCSV(out + "/nodes.csv")
        #expect(nodes.header == ["node_id", "role", "incarnation", "pid", "started_at", "ended_at", "exit_status", "x", "y"])
        #expect(nodes.rows == (try db.fetchNodes().map { n in
            [n.nodeID, n.role.rawValue, csv(n.incarnation), csv(n.pid), csv(n.startedAt), csv(n.endedAt),
             csv(n.exitStatus), csv(n.x), csv(n.y)]
        }))

        let faults = try readCSV(out + "/faults.csv")
        #expect(faults.header == ["id", "node_id", "mode", "started_at", "ended_at", "source", "detail"])
        #expect(faults.rows == (try db.fetchFaults().map { f in
            [csv(f.id), f.nodeID, f.mode, csv(f.startedAt), csv(f.endedAt), f.source, csv(f.detail)]
        }))

        let detections = try readCSV(out + "/detections.csv")
        #expect(detections.header == ["id", "observer", "peer", "state", "at"])
        #expect(detections.rows.map { Array($0.dropFirst()) } == (try db.fetchDetections().map { d in
            [d.observer, d.peer, d.state, csv(d.at)]
        }))

        let counters = try readCSV(out + "/counters.csv")
        #expect(counters.header == ["node_id", "name", "value"])
        #expect(counters.rows == (try db.fetchCounters().map { [$0.nodeID, $0.name, csv($0.value)] }))

        let runInfo = try readCSV(out + "/run_info.csv")
        #expect(runInfo.header == ["key", "value"])
        #expect(Dictionary(uniqueKeysWithValues: runInfo.rows.map { ($0[0], $0[1]) }) == (try db.metadata()))

        let core = counts.filter { ["nodes", "requests", "attempts", "faults", "detections", "counters",
                                    "run_info"].contains($0.key) }
        #expect(core == [
            "nodes": nodes.rows.count, "requests": requests.rows.count, "attempts": attempts.rows.count,
            "faults": faults.rows.count, "detections": detections.rows.count, "counters": counters.rows.count,
            "run_info": runInfo.rows.count,
        ])
        #expect(core == [
            "nodes": try db.fetchNodes().count, "requests": try db.fetchRequests().count,
            "attempts": try db.fetchAttempts().count, "faults": try db.fetchFaults().count,
            "detections": try db.fetchDetections().count, "counters": try db.fetchCounters().count,
            "run_info": try db.metadata().count,
        ])
        // No temporary files left behind.
        let files = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(files == CSVExport.exportNames.map { $0 + ".csv" }.sorted())
    }

    @Test func rawBytesAreRFC4180() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        try db.apply([RecordBatch(counters: [CounterRecord(nodeID: "a,b", name: "say \"hi\"\nnow", value: 1),
                                             CounterRecord(nodeID: "c", name: "plain", value: 2)])])
        try CSVExport.export(databasePath: dir.path, to: dir.file("out"), tables: ["counters"])
        let text = try String(contentsOfFile: dir.file("out/counters.csv"), encoding: .utf8)
        #expect(text == "node_id,name,value\r\n\"a,b\",\"say \"\"hi\"\"\nnow\",1\r\nc,plain,2\r\n")
    }

    @Test func escapeQuotesOnlyWhenNeeded() {
        #expect(CSVExport.escape("plain text") == "plain text")
        #expect(CSVExport.escape("") == "")
        #expect(CSVExport.escape("a,b") == "\"a,b\"")
        #expect(CSVExport.escape("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVExport.escape("a\rb") == "\"a\rb\"")
        #expect(CSVExport.escape("a\nb") == "\"a\nb\"")
        #expect(CSVExport.escape("a\r\nb") == "\"a\r\nb\"")
        #expect(CSVExport.escape("日本") == "日本")
    }

    @Test func exportsOnlyTheTablesAsked() throws {
        let dir = try TemporaryDirectory()
        _ = try fillDatabase(at: dir.file(RunDatabase.fileName))
        let counts = try CSVExport.export(databasePath: dir.file(RunDatabase.fileName), to: dir.file("out"),
                                          tables: ["faults", "run_info", "faults"])
        #expect(counts == ["faults": 2, "run_info": 2])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("out")).sorted() == ["faults.csv", "run_info.csv"])
        // Exporting again replaces the files.
        #expect(try CSVExport.export(databasePath: dir.path, to: dir.file("out"), tables: ["faults"]) == ["faults": 2])
    }

    @Test func unknownTablesAreListedWithTheKnownOnes() throws {
        let dir = try TemporaryDirectory()
        _ = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let error = try #require(throws: RecordingError.self) {
            try CSVExport.export(databasePath: dir.file(RunDatabase.fileName), to: dir.file("out"),
                                 tables: ["requests", "request", "node", "request"])
        }
        #expect(error == .unknownTables(["request", "node"], known: CSVExport.exportNames))
        #expect(error.description.hasPrefix(
            "unknown tables 'request', 'node'; known tables: nodes, requests, attempts, faults, detections, counters, run_info, "))
        #expect(error.description.hasSuffix(", timeseries"))
        #expect(!FileManager.default.fileExists(atPath: dir.file("out")))  // nothing written
    }

    @Test func exportOfADirectoryThatIsNotARun() throws {
        let dir = try TemporaryDirectory()
        let runDir = dir.file("not-a-run")
        try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: false)
        for path in [runDir + "/" + RunDatabase.fileName, runDir] {
            let error = try #require(throws: RecordingError.self) {
                try CSVExport.export(databasePath: path, to: dir.file("out"), tables: nil)
            }
            #expect(error.description == "\(runDir): not a Convoy run directory (no run.sqlite)")
        }
        #expect(RecordingError.notARunDirectory("runs/x").description == "runs/x: not a Convoy run directory (no run.sqlite)")
        #expect(RunDatabase.databasePath(inRunDirectory: "runs/x/") == "runs/x/run.sqlite")
    }

    @Test func exportIntoAFileFails() throws {
        let dir = try TemporaryDirectory()
        _ = try RunDatabase(path: dir.file(RunDatabase.fileName))
        _ = FileManager.default.createFile(atPath: dir.file("occupied"), contents: Data("x".utf8))
        #expect(throws: RecordingError.cannotWrite(path: dir.file("occupied"), reason: "exists and is not a directory")) {
            try CSVExport.export(databasePath: dir.path, to: dir.file("occupied"), tables: nil)
        }
    }
}
