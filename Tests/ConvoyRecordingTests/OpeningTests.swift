@testable import ConvoyRecording
import ConvoyWire
import Foundation
import GRDB
import Testing

/// Opening files that are not (current) Convoy databases, and crash safety.
@Suite struct OpeningTests {
    @Test func missingFile() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("elsewhere.sqlite")
        let error = try #require(throws: RecordingError.self) { try RunDatabase.openForReading(path: path) }
        #expect(error == .missingDatabase(path))
        #expect(error.description == "\(path): no such file")
        #expect(throws: RecordingError.notARunDirectory(dir.path)) {
            try RunDatabase.openForReading(path: dir.file(RunDatabase.fileName))
        }
        #expect(throws: RecordingError.notARunDirectory(dir.file("missing-dir"))) {
            try RunDatabase.openForReading(path: dir.file("missing-dir/run.sqlite"))
        }
        #expect(throws: RecordingError.notARunDirectory(".")) { try RunDatabase.openForReading(path: "run.sqlite") }
    }

    @Test func fileThatIsNotSQLite() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        _ = FileManager.default.createFile(atPath: path, contents: Data(String(repeating: "not a database\n", count: 100).utf8))
        let error = try #require(throws: RecordingError.self) { try RunDatabase.openForReading(path: path) }
        #expect(error == .notAConvoyDatabase(path: path, reason: "not an SQLite database"))
        #expect(error.description == "\(path): not a Convoy run database (not an SQLite database)")
        #expect(throws: RecordingError.notAConvoyDatabase(path: path, reason: "not an SQLite database")) {
            try RunDatabase(path: path)
        }
    }

    @Test func sqliteDatabaseOfSomethingElse() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("other.sqlite")
        do {
            let other = try DatabaseQueue(path: path)
            try other.write { try $0.execute(sql: "CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x')") }
        }
        #expect(throws: RecordingError.notAConvoyDatabase(path: path, reason: "no Convoy schema")) {
            try RunDatabase.openForReading(path: path)
        }
        #expect(throws: RecordingError.notAConvoyDatabase(path: path, reason: "it has tables but no Convoy schema")) {
            try RunDatabase(path: path)
        }
        // An empty file is an empty SQLite database: fine to record into, but not a run to read.
        let empty = dir.file("empty.sqlite")
        _ = FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(throws: RecordingError.notAConvoyDatabase(path: empty, reason: "no Convoy schema")) {
            try RunDatabase.openForReading(path: empty)
        }
    }

    @Test func writerInAMissingDirectory() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("no-such-dir/run.sqlite")
        let error = try #require(throws: RecordingError.self) { try RunDatabase(path: path) }
        guard case .cannotOpen(let errorPath, _) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(errorPath == path)
        #expect(error.description.hasPrefix("\(path): cannot open run database: "))
    }

    @Test func databaseOfANewerConvoy() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        try RunDatabase(path: path).close()
        do {
            let queue = try DatabaseQueue(path: path)
            try queue.write { db in
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v9-future')")
                try db.execute(sql: "CREATE TABLE future (x)")
            }
            try queue.close()
        }
        let error = try #require(throws: RecordingError.self) { try RunDatabase.openForReading(path: path) }
        #expect(error == .newerSchema(path: path, unknownMigrations: ["v9-future"]))
        #expect(error.description.contains("written by a newer version of Convoy"))
        #expect(error.description.contains("v9-future"))
        #expect(throws: RecordingError.newerSchema(path: path, unknownMigrations: ["v9-future"])) {
            try RunDatabase(path: path)
        }
    }

    @Test func theWriterAppliesTheSchemaOnce() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        try RunDatabase(path: path).close()
        try RunDatabase(path: path).close()
        let queue = try DatabaseQueue(path: path)
        let (migrations, journalMode, indexes) = try queue.read { db in
            (try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"),
             try String.fetchOne(db, sql: "PRAGMA journal_mode"),
             try db.indexes(on: "requests").map(\.columns))
        }
        #expect(migrations == Schema.makeMigrator().migrations)  // each once, in order
        #expect(migrations.first == "v1-initial")
        #expect(journalMode == "wal")
        #expect(indexes.contains(["vehicle_id"]))
        #expect(indexes.contains(["status", "latency_ms"]))
    }

    @Test func writerUsesSynchronousNormal() throws {
        let dir = try TemporaryDirectory()
        let db = try RunDatabase(path: dir.file(RunDatabase.fileName))
        let synchronous = try db.writer.write { try Int.fetchOne($0, sql: "PRAGMA synchronous") }
        #expect(synchronous == 1)  // NORMAL
    }

    /// The writer is still open (as if the launcher were killed): a second connection sees every
    /// committed batch and a sound database.
    @Test func secondConnectionWhileTheWriterIsOpen() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        let writer = try RunDatabase(path: path)
        for i in 0..<50 {
            try writer.apply([RecordBatch(requests: [makeRequest("r\(i)", createdAt: Double(i))],
                                          detections: [DetectionRecord(observer: "a", peer: "b", state: "dead", at: Double(i))])])
        }
        let reader = try RunDatabase.openForReading(path: path)
        #expect(try reader.integrityCheck() == ["ok"])
        #expect(try reader.fetchRequests().count == 50)
        #expect(try reader.summary().open == 50)
        withExtendedLifetime(writer) {}
    }

    /// What a killed launcher leaves on disk is the database file and its WAL (the shared-memory
    /// index is rebuilt); committed transactions are in them. Copy exactly those while the writer is
    /// open and recover from the copy.
    @Test func recoveryFromTheFilesOfAKilledWriter() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file(RunDatabase.fileName)
        let writer = try RunDatabase(path: path)
        try writer.recordNodeStarted(NodeRow(nodeID: "v1", role: .vehicle, incarnation: 1, startedAt: 0))
        for i in 0..<100 {
            try writer.apply([RecordBatch(requests: [makeRequest("r\(i)", status: i.isMultiple(of: 2) ? .completed : nil,
                                                                 latencyMs: Double(i))])])
        }
        #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        let crashed = try TemporaryDirectory()
        try FileManager.default.copyItem(atPath: path, toPath: crashed.file(RunDatabase.fileName))
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: crashed.file(RunDatabase.fileName + "-wal"))

        // Read-only first, then as the next writer would (it closes the open requests).
        let reader = try RunDatabase.openForReading(path: crashed.path)
        #expect(try reader.integrityCheck() == ["ok"])
        #expect(try reader.summary().completed == 50)
        let recovered = try RunDatabase(path: crashed.file(RunDatabase.fileName))
        #expect(try recovered.closeOpenRequests(at: 100, reason: "launcher crashed") == 50)
        #expect(try recovered.fetchNodes().count == 1)
        #expect(try recovered.integrityCheck() == ["ok"])
        withExtendedLifetime(writer) {}
    }
}
