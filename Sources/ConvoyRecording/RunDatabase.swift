import ConvoyCore
import ConvoyWire
import Foundation
import GRDB

/// The recording of one run: `RUN_DIR/run.sqlite`.
///
/// The launcher is the single writer: it opens the database with `init(path:)`, applies the
/// `RecordBatch`es that nodes send (`apply(_:)`) and records node lifecycle and faults itself.
/// Export and report open it with `openForReading(path:)`, possibly while the run is still
/// being written (WAL mode lets readers see the last committed state without blocking the writer).
///
/// All times are emulated seconds since the run started. Every public method is one transaction
/// and is safe to call from any thread.
public final class RunDatabase: Sendable {
    /// The database's file name inside a run directory.
    public static let fileName = "run.sqlite"

    /// The path the database was opened with.
    public let path: String
    /// True when opened with `openForReading(path:)`: every recording method then throws
    /// `RecordingError.readOnly`.
    public let isReadOnly: Bool
    /// The schema migrations of this build that the database lacks (it was written by an older
    /// Convoy and opened read-only, so they were not applied); empty otherwise. The tables those
    /// migrations create are absent: `CSVExport` skips them.
    public let missingMigrations: [String]

    /// A `DatabasePool` when writable, a read-only `DatabaseQueue` otherwise.
    let writer: any DatabaseWriter

    /// The path of the run database in `directory`.
    public static func databasePath(inRunDirectory directory: String) -> String {
        directory.hasSuffix("/") ? directory + fileName : directory + "/" + fileName
    }

    /// Creates or opens the run database at `path` (normally `RUN_DIR/run.sqlite`; the directory
    /// must exist) for recording: WAL journal, `synchronous = NORMAL` (a committed transaction
    /// survives a crash of the process; at worst the last transactions are lost on power loss,
    /// never consistency), and the named, append-only schema migrations applied.
    ///
    /// - Throws: `RecordingError.notAConvoyDatabase` when `path` is another SQLite database or no
    ///   database at all, `.newerSchema` when a newer Convoy wrote it, `.cannotOpen` when SQLite
    ///   cannot create or open the file.
    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw Self.openError(error, path: path)
        }
        let migrator = Schema.makeMigrator()
        do {
            try pool.read { db in
                let applied = try migrator.appliedIdentifiers(db)
                if applied.isEmpty {
                    let tables = try String.fetchAll(db, sql: """
                        SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
                        """)
                    if !tables.isEmpty {
                        throw RecordingError.notAConvoyDatabase(
                            path: path, reason: "it has tables but no Convoy schema")
                    }
                } else {
                    try Self.checkSchema(applied: applied, migrator: migrator, path: path, requireAll: false)
                }
            }
            try migrator.migrate(pool)
        } catch {
            throw Self.openError(error, path: path)
        }
        self.path = path
        self.isReadOnly = false
        self.missingMigrations = []
        self.writer = pool
    }

    private init(readOnlyQueue: DatabaseQueue, path: String, missingMigrations: [String]) {
        self.missingMigrations = missingMigrations
        self.path = path
        self.isReadOnly = true
        self.writer = readOnlyQueue
    }

    /// Opens an existing run database read-only, for export and report.
    ///
    /// `path` is the database file or a run directory (then its `run.sqlite` is opened).
    ///
    /// - Throws: `RecordingError.notARunDirectory` when `path` is a directory without
    ///   `run.sqlite` or a missing file named `run.sqlite` (its message reads
    ///   "RUN_DIR: not a Convoy run directory (no run.sqlite)"); `.missingDatabase` for another
    ///   missing file; `.notAConvoyDatabase` for a file that is not SQLite or has no Convoy schema;
    ///   `.newerSchema` when a newer Convoy wrote it (it has migrations this build does not know).
    ///   A database of an older Convoy (some of this build's migrations missing) opens, with
    ///   `missingMigrations` set, so that old runs stay readable.
    public static func openForReading(path: String) throws -> RunDatabase {
        var isDirectory: ObjCBool = false
        var file = path
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            file = databasePath(inRunDirectory: path)
            if !FileManager.default.fileExists(atPath: file) {
                throw RecordingError.notARunDirectory(path)
            }
        } else if !FileManager.default.fileExists(atPath: path) {
            if path == fileName || path.hasSuffix("/" + fileName) {
                throw RecordingError.notARunDirectory(parentDirectory(of: path))
            }
            throw RecordingError.missingDatabase(path)
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(5)
        let migrator = Schema.makeMigrator()
        do {
            let queue = try DatabaseQueue(path: file, configuration: config)
            let missing = try queue.read { db in
                let applied = try migrator.appliedIdentifiers(db)
                if applied.isEmpty {
                    throw RecordingError.notAConvoyDatabase(path: file, reason: "no Convoy schema")
                }
                try checkSchema(applied: applied, migrator: migrator, path: file, requireAll: false)
                return migrator.migrations.filter { !applied.contains($0) }
            }
            return RunDatabase(readOnlyQueue: queue, path: file, missingMigrations: missing)
        } catch {
            throw openError(error, path: file)
        }
    }

    /// Closes the database. A writable database is checkpointed first: `run.sqlite` alone then
    /// holds the whole recording (the `-wal` file, which may stay, is empty). Calling any other
    /// method afterwards throws.
    public func close() throws {
        if let pool = writer as? DatabasePool {
            try pool.writeWithoutTransaction { db in _ = try db.checkpoint(.truncate) }
            try pool.close()
        } else if let queue = writer as? DatabaseQueue {
            try queue.close()
        }
    }

    // MARK: - Recording (launcher only)

    /// Applies the batches in order, all in one transaction (all or nothing).
    ///
    /// - Requests are upserted by `request_id` and attempts by `(request_id, attempt)`: the later
    ///   version replaces every column of the earlier one, except that a version without a
    ///   terminal state (request `status` nil, attempt `outcome` "pending") never replaces one
    ///   with a terminal state — a late "created" message cannot reopen a closed request.
    /// - Counters are upserted by `(node_id, name)`: the last value wins.
    /// - Detections are appended.
    public func apply(_ batches: [RecordBatch]) throws {
        try ensureWritable()
        guard batches.contains(where: { !$0.isEmpty }) else { return }
        try writer.write { db in
            for batch in batches {
                // A version without a terminal state never replaces one with a terminal state.
                for r in batch.requests {
                    try db.upsert(r, key: ["request_id"], where: "excluded.status IS NOT NULL OR requests.status IS NULL")
                }
                for a in batch.attempts {
                    try db.upsert(a, key: ["request_id", "attempt"],
                                  where: "excluded.outcome <> 'pending' OR attempts.outcome = 'pending'")
                }
                for d in batch.detections { try d.insert(db) }
                for c in batch.counters { try db.upsert(c, key: ["node_id", "name"]) }
                try LinkTables.apply(batch, in: db)
                for output in batch.outputs { try output.insert(db) }
                for r in batch.fedRounds { try r.insert(db) }
                for u in batch.fedUpdates { try u.insert(db) }
                for e in batch.fedEvals { try e.insert(db) }
                for c in batch.analyticsCells { try c.insert(db) }
            }
        }
    }

    /// Records that a node process started.
    ///
    /// - Throws: `RecordingError.duplicateNode` when `(nodeID, incarnation)` is already recorded.
    public func recordNodeStarted(_ row: NodeRow) throws {
        try ensureWritable()
        do {
            try writer.write { db in try row.insert(db) }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw RecordingError.duplicateNode(nodeID: row.nodeID, incarnation: row.incarnation)
        }
    }

    /// Records how a node process ended (`exitStatus` like "exited 0", "killed by signal 9").
    ///
    /// - Throws: `RecordingError.unknownNode` when that incarnation was never recorded as started.
    public func recordNodeEnded(nodeID: String, incarnation: Int, endedAt: Double, exitStatus: String) throws {
        try ensureWritable()
        let changed = try writer.write { db in
            try db.execute(
                sql: "UPDATE nodes SET ended_at = ?, exit_status = ? WHERE node_id = ? AND incarnation = ?",
                arguments: [endedAt, exitStatus, nodeID, incarnation])
            return db.changesCount
        }
        if changed == 0 {
            throw RecordingError.unknownNode(nodeID: nodeID, incarnation: incarnation)
        }
    }

    /// Records a fault and returns its id (`row.id` when given, otherwise a new one).
    public func recordFaultStarted(_ row: FaultRow) throws -> Int64 {
        try ensureWritable()
        return try writer.write { db in
            try row.insert(db)
            return db.lastInsertedRowID
        }
    }

    /// Records the end of fault `id`.
    ///
    /// - Throws: `RecordingError.unknownFault` when there is no fault `id`.
    public func recordFaultEnded(id: Int64, endedAt: Double) throws {
        try ensureWritable()
        let changed = try writer.write { db in
            try db.execute(sql: "UPDATE faults SET ended_at = ? WHERE id = ?", arguments: [endedAt, id])
            return db.changesCount
        }
        if changed == 0 { throw RecordingError.unknownFault(id: id) }
    }

    /// Closes every open request at the end of a run: each request whose status is NULL becomes
    /// `failed` with `reason`, `finished_at = at`, `latency_ms = (at - created_at) × 1000` and
    /// `deadline_met = 0`; each attempt still "pending" becomes "abandoned" with `ended_at = at`.
    ///
    /// - Returns: How many requests were closed.
    @discardableResult
    public func closeOpenRequests(at: Double, reason: String) throws -> Int {
        try closeOpen(vehicleID: nil, at: at, reason: reason)
    }

    /// Like `closeOpenRequests(at:reason:)`, for the requests of one vehicle only (and the
    /// attempts of those requests): used when a vehicle process dies.
    ///
    /// - Returns: How many requests were closed.
    @discardableResult
    public func closeOpenRequests(vehicleID: String, at: Double, reason: String) throws -> Int {
        try closeOpen(vehicleID: vehicleID, at: at, reason: reason)
    }

    private func closeOpen(vehicleID: String?, at: Double, reason: String) throws -> Int {
        try ensureWritable()
        return try writer.write { db in
            let vehicleFilter = vehicleID == nil ? "" : " AND vehicle_id = ?"
            var arguments: StatementArguments = [reason, at, at]
            if let vehicleID { arguments += [vehicleID] }
            try db.execute(
                sql: """
                    UPDATE requests
                    SET status = 'failed', reason = ?, finished_at = ?, latency_ms = (? - created_at) * 1000.0,
                        deadline_met = 0
                    WHERE status IS NULL\(vehicleFilter)
                    """,
                arguments: arguments)
            let closed = db.changesCount
            if let vehicleID {
                try db.execute(
                    sql: """
                        UPDATE attempts SET outcome = 'abandoned', ended_at = ?
                        WHERE outcome = 'pending'
                          AND request_id IN (SELECT request_id FROM requests WHERE vehicle_id = ?)
                        """,
                    arguments: [at, vehicleID])
            } else {
                try db.execute(
                    sql: "UPDATE attempts SET outcome = 'abandoned', ended_at = ? WHERE outcome = 'pending'",
                    arguments: [at])
            }
            return closed
        }
    }

    /// Sets `key` to `value` in `run_info` (replacing an earlier value).
    public func setMetadata(_ key: String, _ value: String) throws {
        try ensureWritable()
        try writer.write { db in
            try db.execute(
                sql: "INSERT INTO run_info (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                arguments: [key, value])
        }
    }

    // MARK: - Reading

    /// Counts of requests by status, latency percentiles of completed requests and the number of
    /// vehicles with requests, from one consistent snapshot.
    public func summary() throws -> RunSummary {
        try writer.read { db in
            var summary = RunSummary(completed: 0, failed: 0, expired: 0, open: 0, p50Ms: nil, p95Ms: nil,
                                     p99Ms: nil, vehiclesWithRequests: 0)
            let rows = try Row.fetchAll(db, sql: "SELECT status, COUNT(*) FROM requests GROUP BY status")
            for row in rows {
                let status: String? = row[0]
                let count: Int = row[1]
                switch status {
                case nil: summary.open = count
                case RequestStatus.completed.rawValue?: summary.completed = count
                case RequestStatus.failed.rawValue?: summary.failed = count
                case RequestStatus.expired.rawValue?: summary.expired = count
                case let other?: throw RecordingError.invalidValue(table: "requests", column: "status", value: other)
                }
            }
            summary.vehiclesWithRequests =
                try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT vehicle_id) FROM requests") ?? 0
            let completedWhere = "status = 'completed' AND latency_ms IS NOT NULL"
            let n = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM requests WHERE \(completedWhere)") ?? 0
            if n > 0 {
                func percentile(_ p: Int) throws -> Double? {
                    let rank = max(1, (p * n + 99) / 100)  // nearest rank: ceil(p/100 · n)
                    return try Double.fetchOne(
                        db,
                        sql: "SELECT latency_ms FROM requests WHERE \(completedWhere) ORDER BY latency_ms LIMIT 1 OFFSET ?",
                        arguments: [rank - 1])
                }
                summary.p50Ms = try percentile(50)
                summary.p95Ms = try percentile(95)
                summary.p99Ms = try percentile(99)
            }
            return summary
        }
    }

    /// All `run_info` entries.
    public func metadata() throws -> [String: String] {
        try writer.read { db in
            var result: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT key, value FROM run_info") {
                result[row[0]] = row[1] as String
            }
            return result
        }
    }

    /// The requests (of one vehicle when `vehicleID` is given), by `created_at` then `request_id`.
    public func fetchRequests(vehicleID: String? = nil) throws -> [RequestRecord] {
        try writer.read { db in
            let sql = vehicleID == nil
                ? "SELECT * FROM requests ORDER BY created_at, request_id"
                : "SELECT * FROM requests WHERE vehicle_id = ? ORDER BY created_at, request_id"
            let arguments: StatementArguments = vehicleID.map { [$0] } ?? []
            return try RequestRecord.fetchAll(db, sql: sql, arguments: arguments)
        }
    }

    /// The request `requestID`, or nil.
    public func fetchRequest(id requestID: String) throws -> RequestRecord? {
        try writer.read { db in
            try RequestRecord.fetchOne(db, key: requestID)
        }
    }

    /// The attempts, by `request_id` then `attempt`.
    public func fetchAttempts() throws -> [AttemptRecord] {
        try writer.read(AttemptRecord.fetchAllOrdered)
    }

    /// The detections, in the order they were recorded.
    public func fetchDetections() throws -> [DetectionRecord] {
        try writer.read(DetectionRecord.fetchAllOrdered)
    }

    /// The counters, by `node_id` then `name`.
    public func fetchCounters() throws -> [CounterRecord] {
        try writer.read(CounterRecord.fetchAllOrdered)
    }

    /// The node incarnations, by `started_at`, `node_id`, `incarnation`.
    public func fetchNodes() throws -> [NodeRow] {
        try writer.read(NodeRow.fetchAllOrdered)
    }

    /// The faults, by id.
    public func fetchFaults() throws -> [FaultRow] {
        try writer.read(FaultRow.fetchAllOrdered)
    }

    /// Everything the results (report, time series) are computed from, read in one transaction,
    /// so the parts agree with each other even while the launcher is still recording.
    public func snapshot() throws -> RunSnapshot {
        try writer.read(Self.snapshot)
    }

    /// `snapshot()` inside a read transaction the caller holds.
    static func snapshot(_ db: Database) throws -> RunSnapshot {
        var info: [String: String] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM run_info") {
            info[row[0]] = row[1] as String
        }
        var snapshot = RunSnapshot(
            requests: try RequestRecord.fetchAllOrdered(db), attempts: try AttemptRecord.fetchAllOrdered(db),
            detections: try DetectionRecord.fetchAllOrdered(db), nodes: try NodeRow.fetchAllOrdered(db),
            faults: try FaultRow.fetchAllOrdered(db), runInfo: info,
            outputs: try db.tableExists(OutputRecord.databaseTableName) ? OutputRecord.fetchAllOrdered(db) : [],
            fed: try db.tableExists(FedRoundRecord.databaseTableName)
                ? (try FedRoundRecord.fetchAllOrdered(db), try FedUpdateRecord.fetchAllOrdered(db), try FedEvalRecord.fetchAllOrdered(db))
                : ([], [], []))
        if try db.tableExists(AnalyticsCellRecord.databaseTableName) { snapshot.analyticsCells = try AnalyticsCellRecord.fetchAllOrdered(db) }
        snapshot.counters = try CounterRecord.fetchAllOrdered(db)
        return snapshot
    }

    /// What real model servers generated, in the order recorded (none in a database from before them).
    public func fetchOutputs() throws -> [OutputRecord] {
        try writer.read { db in try db.tableExists(OutputRecord.databaseTableName) ? OutputRecord.fetchAllOrdered(db) : [] }
    }

    /// Federated fine-tuning's tables (empty in a database from before them).
    public func fetchFedTune() throws -> (rounds: [FedRoundRecord], updates: [FedUpdateRecord], evals: [FedEvalRecord]) {
        try writer.read { db in
            guard try db.tableExists(FedRoundRecord.databaseTableName) else { return ([], [], []) }
            return (try FedRoundRecord.fetchAllOrdered(db), try FedUpdateRecord.fetchAllOrdered(db), try FedEvalRecord.fetchAllOrdered(db))
        }
    }

    /// SQLite's `PRAGMA integrity_check`: `["ok"]` for a sound database, otherwise the problems.
    public func integrityCheck() throws -> [String] {
        try writer.read { db in try String.fetchAll(db, sql: "PRAGMA integrity_check") }
    }

    // MARK: - Private

    private func ensureWritable() throws {
        if isReadOnly { throw RecordingError.readOnly(path: path) }
    }

    /// Checks the applied migrations of a database against this build's.
    private static func checkSchema(applied: Set<String>, migrator: DatabaseMigrator, path: String,
                                    requireAll: Bool) throws {
        let known = migrator.migrations
        guard applied.contains(Schema.initialMigration) else {
            throw RecordingError.notAConvoyDatabase(path: path, reason: "no Convoy schema")
        }
        let unknown = applied.subtracting(known).sorted()
        if !unknown.isEmpty {
            throw RecordingError.newerSchema(path: path, unknownMigrations: unknown)
        }
        let missing = known.filter { !applied.contains($0) }
        if requireAll && !missing.isEmpty {
            throw RecordingError.olderSchema(path: path, missingMigrations: missing)
        }
    }

    /// Turns an error met while opening `path` into a `RecordingError` a user can act on.
    private static func openError(_ error: any Error, path: String) -> any Error {
        if error is RecordingError { return error }
        if let error = error as? DatabaseError {
            switch error.resultCode {
            case .SQLITE_NOTADB:
                return RecordingError.notAConvoyDatabase(path: path, reason: "not an SQLite database")
            case .SQLITE_CORRUPT:
                return RecordingError.notAConvoyDatabase(path: path, reason: "the file is corrupt")
            default:
                return RecordingError.cannotOpen(path: path, reason: error.message ?? "\(error.resultCode)")
            }
        }
        return error
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }
}
