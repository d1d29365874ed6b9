import ConvoyCore
import ConvoyRecording
import ConvoyWire
import Foundation
import Testing

@Suite struct RunDatabaseTests {
    @Test func createdThenFinishedRequestIsOneRowWithFinalValues() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let created = makeRequest("r1", createdAt: 2)
        let finished = makeRequest("r1", createdAt: 2, status: .completed, latencyMs: 120)
        try db.apply([RecordBatch(requests: [created])])
        #expect(try db.fetchRequests() == [created])
        try db.apply([RecordBatch(requests: [finished])])
        #expect(try db.fetchRequests() == [finished])

        // Both versions in one apply call, in two batches and in one batch.
        try db.apply([RecordBatch(requests: [makeRequest("r2")]),
                      RecordBatch(requests: [makeRequest("r2", status: .expired, latencyMs: 600)])])
        try db.apply([RecordBatch(requests: [makeRequest("r3"), makeRequest("r3", status: .failed, latencyMs: 5)])])
        let all = try db.fetchRequests()
        #expect(all.count == 3)
        #expect(try db.fetchRequest(id: "r2")?.status == .expired)
        #expect(try db.fetchRequest(id: "r3") == makeRequest("r3", status: .failed, latencyMs: 5))
        #expect(try db.fetchRequest(id: "nope") == nil)
    }

    @Test func aLateOpenVersionDoesNotReopenATerminalRequestOrAttempt() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let finished = makeRequest("r1", status: .completed, latencyMs: 80)
        let replied = AttemptRecord(requestID: "r1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1,
                                    endedAt: 1.08, outcome: "replied")
        try db.apply([RecordBatch(requests: [finished], attempts: [replied])])
        try db.apply([RecordBatch(
            requests: [makeRequest("r1")],
            attempts: [AttemptRecord(requestID: "r1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1,
                                     outcome: "pending")])])
        #expect(try db.fetchRequests() == [finished])
        #expect(try db.fetchAttempts() == [replied])

        // A later terminal version does replace an earlier terminal one.
        let failed = makeRequest("r1", status: .failed, latencyMs: 90)
        try db.apply([RecordBatch(requests: [failed])])
        #expect(try db.fetchRequests() == [failed])
    }

    @Test func attemptsCountersAndDetections() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let pending1 = AttemptRecord(requestID: "r1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1, outcome: "pending")
        let timeout1 = AttemptRecord(requestID: "r1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1,
                                     endedAt: 1.3, outcome: "timeout", detail: "no reply in 300 ms")
        let pending2 = AttemptRecord(requestID: "r1", attempt: 2, path: "macro", target: "cloud", sentAt: 1.3,
                                     outcome: "pending")
        let d1 = DetectionRecord(observer: "rsu1", peer: "edge1", state: "suspect", at: 3)
        let d2 = DetectionRecord(observer: "rsu1", peer: "edge1", state: "suspect", at: 3)
        try db.apply([
            RecordBatch(attempts: [pending1], detections: [d1],
                        counters: [CounterRecord(nodeID: "v1", name: "malformed", value: 1)]),
            RecordBatch(attempts: [timeout1, pending2], detections: [d2],
                        counters: [CounterRecord(nodeID: "v1", name: "malformed", value: 4),
                                   CounterRecord(nodeID: "v2", name: "malformed", value: 2)]),
        ])
        try db.apply([])
        try db.apply([RecordBatch()])
        #expect(try db.fetchAttempts() == [timeout1, pending2])
        #expect(try db.fetchDetections() == [d1, d2])  // appended, duplicates kept
        #expect(try db.fetchCounters() == [CounterRecord(nodeID: "v1", name: "malformed", value: 4),
                                           CounterRecord(nodeID: "v2", name: "malformed", value: 2)])
    }

    @Test func applyIsAllOrNothing() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        // SQLite stores NaN as NULL, which the NOT NULL column refuses: the second batch fails.
        var broken = makeRequest("bad")
        broken.createdAt = .nan
        #expect(throws: (any Error).self) {
            try db.apply([RecordBatch(requests: [makeRequest("good")],
                                      detections: [DetectionRecord(observer: "a", peer: "b", state: "dead", at: 1)]),
                          RecordBatch(requests: [broken])])
        }
        #expect(try db.fetchRequests().isEmpty)
        #expect(try db.fetchDetections().isEmpty)
        // The database is still usable.
        try db.apply([RecordBatch(requests: [makeRequest("good")])])
        #expect(try db.fetchRequests().count == 1)
    }

    @Test func nodeLifecycle() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let rsu = NodeRow(nodeID: "rsu1", role: .rsu, incarnation: 1, pid: 4242, startedAt: 0, x: 10.5, y: -3)
        let v1 = NodeRow(nodeID: "v1", role: .vehicle, incarnation: 1, pid: 4243, startedAt: 0.25)
        try db.recordNodeStarted(rsu)
        try db.recordNodeStarted(v1)
        try db.recordNodeEnded(nodeID: "rsu1", incarnation: 1, endedAt: 12, exitStatus: "killed by signal 9")
        let rsu2 = NodeRow(nodeID: "rsu1", role: .rsu, incarnation: 2, pid: 5000, startedAt: 13, x: 10.5, y: -3)
        try db.recordNodeStarted(rsu2)

        var ended = rsu
        ended.endedAt = 12
        ended.exitStatus = "killed by signal 9"
        #expect(try db.fetchNodes() == [ended, v1, rsu2])

        #expect(throws: RecordingError.duplicateNode(nodeID: "v1", incarnation: 1)) {
            try db.recordNodeStarted(v1)
        }
        #expect(throws: RecordingError.unknownNode(nodeID: "v9", incarnation: 1)) {
            try db.recordNodeEnded(nodeID: "v9", incarnation: 1, endedAt: 1, exitStatus: "exited 0")
        }
    }

    @Test func faults() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let id1 = try db.recordFaultStarted(FaultRow(nodeID: "edge1", mode: "kill", startedAt: 5, source: "scenario"))
        let id2 = try db.recordFaultStarted(FaultRow(nodeID: "rsu2", mode: "partition", startedAt: 6, source: "live",
                                                     detail: "from rsu1"))
        #expect(id1 != id2)
        try db.recordFaultEnded(id: id2, endedAt: 9.5)
        #expect(try db.fetchFaults() == [
            FaultRow(id: id1, nodeID: "edge1", mode: "kill", startedAt: 5, source: "scenario"),
            FaultRow(id: id2, nodeID: "rsu2", mode: "partition", startedAt: 6, endedAt: 9.5, source: "live",
                     detail: "from rsu1"),
        ])
        #expect(throws: RecordingError.unknownFault(id: 999)) { try db.recordFaultEnded(id: 999, endedAt: 1) }
    }

    @Test func closeOpenRequestsClosesRequestsAndAbandonsAttempts() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let done = makeRequest("done", createdAt: 1, status: .completed, latencyMs: 50)
        try db.apply([RecordBatch(
            requests: [done, makeRequest("open1", createdAt: 2), makeRequest("open2", vehicle: "v2", createdAt: 3.5)],
            attempts: [
                AttemptRecord(requestID: "done", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1, endedAt: 1.05,
                              outcome: "replied"),
                AttemptRecord(requestID: "open1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 2, outcome: "pending"),
            ])])
        let closed = try db.closeOpenRequests(at: 10, reason: "run ended")
        #expect(closed == 2)
        let open1 = try #require(try db.fetchRequest(id: "open1"))
        #expect(open1.status == .failed)
        #expect(open1.reason == "run ended")
        #expect(open1.finishedAt == 10)
        #expect(open1.latencyMs == 8000)
        #expect(open1.deadlineMet == false)
        #expect(try db.fetchRequest(id: "open2")?.latencyMs == 6500)
        #expect(try db.fetchRequest(id: "done") == done)
        let attempts = try db.fetchAttempts()
        #expect(attempts.map(\.outcome) == ["replied", "abandoned"])
        #expect(attempts[1].endedAt == 10)
        #expect(attempts[0].endedAt == 1.05)
        #expect(try db.closeOpenRequests(at: 11, reason: "again") == 0)
        #expect(try db.summary().open == 0)
    }

    @Test func closeOpenRequestsOfOneVehicle() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        try db.apply([RecordBatch(
            requests: [makeRequest("a1", vehicle: "va"), makeRequest("a2", vehicle: "va"),
                       makeRequest("b1", vehicle: "vb")],
            attempts: [
                AttemptRecord(requestID: "a1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1, outcome: "pending"),
                AttemptRecord(requestID: "b1", attempt: 1, path: "rsu", target: "rsu1", sentAt: 1, outcome: "pending"),
            ])])
        #expect(try db.closeOpenRequests(vehicleID: "va", at: 4, reason: "vehicle died") == 2)
        #expect(try db.fetchRequests(vehicleID: "va").allSatisfy { $0.status == .failed && $0.reason == "vehicle died" })
        #expect(try db.fetchRequest(id: "b1")?.status == nil)
        #expect(try db.fetchAttempts().map(\.outcome) == ["abandoned", "pending"])
        let summary = try db.summary()
        #expect(summary.failed == 2)
        #expect(summary.open == 1)
    }

    @Test func summaryPercentilesAndCounts() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        #expect(try db.summary() == RunSummary(completed: 0, failed: 0, expired: 0, open: 0, p50Ms: nil,
                                               p95Ms: nil, p99Ms: nil, vehiclesWithRequests: 0))
        // Latencies 1…200 ms in a scrambled order, over 7 vehicles; failed and expired requests with
        // huge latencies must not count in the percentiles.
        var generator = SeededGenerator(seed: 7)
        let latencies = (1...200).map(Double.init).shuffled(using: &generator)
        var requests = latencies.enumerated().map { index, latency in
            makeRequest("c\(index)", vehicle: "v\(index % 7)", status: .completed, latencyMs: latency)
        }
        requests += (0..<3).map { makeRequest("f\($0)", vehicle: "v1", status: .failed, latencyMs: 1e6) }
        requests += (0..<4).map { makeRequest("e\($0)", vehicle: "v8", status: .expired, latencyMs: 1e6) }
        requests += (0..<5).map { makeRequest("o\($0)", vehicle: "v9") }
        try db.apply([RecordBatch(requests: requests)])
        #expect(try db.summary() == RunSummary(completed: 200, failed: 3, expired: 4, open: 5, p50Ms: 100,
                                               p95Ms: 190, p99Ms: 198, vehiclesWithRequests: 9))

        // Nearest rank on a small set.
        let small = try TemporaryDirectory()
        let db2 = try RunDatabase(path: small.file(RunDatabase.fileName))
        try db2.apply([RecordBatch(requests: [30.5, 10, 20].enumerated().map {
            makeRequest("s\($0.offset)", status: .completed, latencyMs: $0.element)
        })])
        let summary = try db2.summary()
        #expect(summary.p50Ms == 20)
        #expect(summary.p95Ms == 30.5)
        #expect(summary.p99Ms == 30.5)
        #expect(summary.total == 3)
    }

    @Test func metadata() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        try db.setMetadata("seed", "42")
        try db.setMetadata("scenario", "highway.yaml")
        try db.setMetadata("seed", "43")
        #expect(try db.metadata() == ["seed": "43", "scenario": "highway.yaml"])
    }

    @Test func reopeningForWritingKeepsTheRecording() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        do {
            let db = try RunDatabase(path: path)
            try db.apply([RecordBatch(requests: [makeRequest("r1")])])
            try db.close()
        }
        let db = try RunDatabase(path: path)
        #expect(try db.fetchRequests().map(\.requestID) == ["r1"])
        #expect(db.isReadOnly == false)
    }

    @Test func readOnlyDatabaseRefusesWrites() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        let writer = try RunDatabase(path: path)
        try writer.apply([RecordBatch(requests: [makeRequest("r1")])])
        let reader = try RunDatabase.openForReading(path: path)
        #expect(reader.isReadOnly)
        #expect(throws: RecordingError.readOnly(path: path)) { try reader.setMetadata("k", "v") }
        #expect(throws: RecordingError.readOnly(path: path)) { try reader.apply([RecordBatch(requests: [makeRequest("r2")])]) }
        #expect(try reader.fetchRequests().count == 1)
        // The reader sees what the writer commits later.
        try writer.apply([RecordBatch(requests: [makeRequest("r2")])])
        #expect(try reader.fetchRequests().count == 2)
    }

    @Test func openForReadingAfterTheWriterClosed() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        let writer = try RunDatabase(path: path)
        try writer.apply([RecordBatch(requests: [makeRequest("r1")])])
        try writer.close()
        // Checkpointed: run.sqlite alone holds the recording.
        let walSize = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        #expect(walSize == 0)
        let reader = try RunDatabase.openForReading(path: dir.path)  // a run directory works too
        #expect(reader.path == path)
        #expect(try reader.fetchRequests().count == 1)
        #expect(try reader.integrityCheck() == ["ok"])

        // Only run.sqlite copied elsewhere (no -wal, no -shm) still opens and holds everything.
        let copy = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: path, toPath: copy.file(RunDatabase.fileName))
        let copied = try RunDatabase.openForReading(path: copy.file(RunDatabase.fileName))
        #expect(try copied.fetchRequests().count == 1)
    }
}
