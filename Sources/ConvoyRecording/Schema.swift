import ConvoyWire
import GRDB

/// The schema of `run.sqlite`.
///
/// Migrations are append-only: a released migration is never edited or removed; a schema change
/// is a new migration registered after the existing ones. The applied migration identifiers are
/// stored in the database (`grdb_migrations`), so a build can tell a database written by a newer
/// build (it has identifiers this build does not know).
enum Schema {
    /// The identifier of the first migration: a database without it is not a Convoy database.
    static let initialMigration = "v1-initial"

    static func makeMigrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration(initialMigration) { db in
            try db.execute(sql: """
                CREATE TABLE nodes (
                    node_id TEXT NOT NULL,
                    role TEXT NOT NULL,
                    incarnation INTEGER NOT NULL,
                    pid INTEGER,
                    started_at REAL NOT NULL,
                    ended_at REAL,
                    exit_status TEXT,
                    x REAL,
                    y REAL,
                    PRIMARY KEY (node_id, incarnation)
                );
                CREATE TABLE requests (
                    request_id TEXT NOT NULL PRIMARY KEY,
                    vehicle_id TEXT NOT NULL,
                    created_at REAL NOT NULL,
                    deadline_at REAL NOT NULL,
                    model TEXT NOT NULL,
                    input_tokens INTEGER NOT NULL,
                    output_tokens INTEGER NOT NULL,
                    payload_bytes INTEGER NOT NULL,
                    status TEXT,
                    finished_at REAL,
                    served_by TEXT,
                    path TEXT,
                    attempts INTEGER NOT NULL,
                    latency_ms REAL,
                    reason TEXT,
                    queue_wait_ms REAL,
                    compute_ms REAL,
                    network_ms REAL,
                    deadline_met INTEGER
                );
                CREATE INDEX requests_by_vehicle ON requests (vehicle_id);
                CREATE INDEX requests_by_status_latency ON requests (status, latency_ms);
                CREATE TABLE attempts (
                    request_id TEXT NOT NULL,
                    attempt INTEGER NOT NULL,
                    path TEXT NOT NULL,
                    target TEXT NOT NULL,
                    sent_at REAL NOT NULL,
                    ended_at REAL,
                    outcome TEXT NOT NULL,
                    detail TEXT,
                    PRIMARY KEY (request_id, attempt)
                );
                CREATE INDEX attempts_by_outcome ON attempts (outcome);
                CREATE TABLE faults (
                    id INTEGER PRIMARY KEY,
                    node_id TEXT NOT NULL,
                    mode TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    ended_at REAL,
                    source TEXT NOT NULL,
                    detail TEXT
                );
                CREATE TABLE detections (
                    id INTEGER PRIMARY KEY,
                    observer TEXT NOT NULL,
                    peer TEXT NOT NULL,
                    state TEXT NOT NULL,
                    at REAL NOT NULL
                );
                CREATE TABLE counters (
                    node_id TEXT NOT NULL,
                    name TEXT NOT NULL,
                    value INTEGER NOT NULL,
                    PRIMARY KEY (node_id, name)
                );
                CREATE TABLE run_info (
                    key TEXT NOT NULL PRIMARY KEY,
                    value TEXT NOT NULL
                );
                """)
        }
        // v2-links is registered here by the links work.
        LinkTables.register(in: &migrator)
        migrator.registerMigration("v3-tasks") { db in
            try db.execute(sql: """
                ALTER TABLE requests ADD COLUMN task TEXT;
                ALTER TABLE requests ADD COLUMN cache_hit INTEGER;
                ALTER TABLE requests ADD COLUMN cost REAL;
                """)
        }
        migrator.registerMigration("v4-outputs") { db in
            // What real model servers generated (one row per job, by the server node that called it).
            try db.execute(sql: """
                CREATE TABLE outputs (
                    id INTEGER PRIMARY KEY,
                    request_id TEXT NOT NULL,
                    served_by TEXT NOT NULL,
                    model TEXT NOT NULL,
                    prompt TEXT NOT NULL,
                    answer TEXT NOT NULL,
                    prompt_tokens INTEGER,
                    completion_tokens INTEGER,
                    ttft_ms REAL,
                    wall_ms REAL NOT NULL,
                    decode_tokens_per_s REAL,
                    started_at REAL NOT NULL,
                    compute_ms REAL NOT NULL,
                    late_ms REAL NOT NULL,
                    failure TEXT
                );
                CREATE INDEX outputs_by_request ON outputs (request_id);
                """)
        }
        migrator.registerMigration("v5-fedtune") { db in
            // Federated fine-tuning: aggregations, client updates, held-out evaluations (by the aggregator).
            try db.execute(sql: """
                CREATE TABLE fed_rounds (
                    id INTEGER PRIMARY KEY,
                    scheme TEXT NOT NULL,
                    round INTEGER NOT NULL,
                    cluster INTEGER NOT NULL,
                    level TEXT NOT NULL,
                    started_at REAL NOT NULL,
                    ended_at REAL NOT NULL,
                    participants INTEGER NOT NULL,
                    aggregated INTEGER NOT NULL,
                    dropped INTEGER NOT NULL,
                    aggregated_at TEXT NOT NULL,
                    train_loss REAL
                );
                CREATE TABLE fed_updates (
                    id INTEGER PRIMARY KEY,
                    vehicle_id TEXT NOT NULL,
                    base_version INTEGER NOT NULL,
                    round INTEGER NOT NULL,
                    cluster INTEGER NOT NULL,
                    transfer INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    chunks_received INTEGER NOT NULL,
                    chunks INTEGER NOT NULL,
                    samples INTEGER NOT NULL,
                    train_loss REAL,
                    train_s REAL,
                    real_train_s REAL,
                    upload_started_at REAL,
                    upload_ended_at REAL,
                    via TEXT NOT NULL,
                    outcome TEXT NOT NULL,
                    staleness INTEGER NOT NULL,
                    recorded_by TEXT NOT NULL
                );
                CREATE TABLE fed_evals (
                    id INTEGER PRIMARY KEY,
                    round INTEGER NOT NULL,
                    cluster INTEGER NOT NULL,
                    domain TEXT NOT NULL,
                    loss REAL NOT NULL,
                    perplexity REAL NOT NULL,
                    at REAL NOT NULL,
                    recorded_by TEXT NOT NULL
                );
                """)
        }
        migrator.registerMigration("v6-reasoning-schemes") { db in
            // Split inference: the split point, the bytes handed up, the on-board stage's time.
            // Federated analytics: the aggregator's estimate and the trace's ground truth, per road cell.
            // Link totals: the bytes offered to each link.
            try db.execute(sql: """
                ALTER TABLE requests ADD COLUMN split_k INTEGER;
                ALTER TABLE requests ADD COLUMN split_bytes INTEGER;
                ALTER TABLE requests ADD COLUMN lower_stage_ms REAL;
                CREATE TABLE analytics_cells (
                    id INTEGER PRIMARY KEY,
                    source TEXT NOT NULL,
                    cell_x INTEGER NOT NULL,
                    cell_y INTEGER NOT NULL,
                    vehicles REAL NOT NULL,
                    mean_speed REAL,
                    contributors INTEGER NOT NULL,
                    epsilon REAL,
                    at REAL NOT NULL,
                    recorded_by TEXT NOT NULL
                );
                ALTER TABLE link_stats ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
                """)
        }
        // Append new migrations here; never edit the ones above.
        return migrator
    }

    /// The record tables, in export order; a new table is a line here (and its migration above).
    static let recordTables: [any RecordedTable.Type] = [
        NodeRow.self, RequestRecord.self, AttemptRecord.self, FaultRow.self, DetectionRecord.self, CounterRecord.self,
        LinkStatRecord.self, LinkSampleRecord.self, HandoverRecord.self, OutputRecord.self,
        FedRoundRecord.self, FedUpdateRecord.self, FedEvalRecord.self, AnalyticsCellRecord.self,
    ]

    /// The exported tables, in export order, with the row order of their export.
    static let tables: [(name: String, orderBy: String)] = {
        var tables = recordTables.map { ($0.databaseTableName, $0.exportOrder) }
        tables.insert(("run_info", "key"), at: 6)
        return tables
    }()
}
