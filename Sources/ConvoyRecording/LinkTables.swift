import ConvoyWire
import GRDB

/// The link tables (migration "v2-links"): `link_stats`, `link_samples`, `handovers`.
enum LinkTables {
    static let migration = "v2-links"

    static func register(in migrator: inout DatabaseMigrator) {
        migrator.registerMigration(migration) { db in
            try db.execute(sql: """
                CREATE TABLE link_stats (
                    node_id TEXT NOT NULL,
                    link TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    sent INTEGER NOT NULL,
                    delivered INTEGER NOT NULL,
                    lost INTEGER NOT NULL,
                    out_of_range INTEGER NOT NULL,
                    PRIMARY KEY (node_id, link, kind)
                );
                CREATE TABLE link_samples (
                    id INTEGER PRIMARY KEY,
                    node_id TEXT NOT NULL,
                    link TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    sent_at REAL NOT NULL,
                    modelled_at REAL NOT NULL,
                    actual_at REAL NOT NULL
                );
                CREATE INDEX link_samples_by_link ON link_samples (link, kind);
                CREATE TABLE handovers (
                    id INTEGER PRIMARY KEY,
                    vehicle_id TEXT NOT NULL,
                    at REAL NOT NULL,
                    event TEXT NOT NULL,
                    from_cell TEXT,
                    to_cell TEXT,
                    x REAL NOT NULL,
                    y REAL NOT NULL
                );
                CREATE INDEX handovers_by_vehicle ON handovers (vehicle_id, at);
                """)
        }
    }

    static let exported: [(name: String, orderBy: String)] = [
        ("link_stats", "node_id, link, kind"),
        ("link_samples", "id"),
        ("handovers", "id"),
    ]

    private static let upsertStatSQL = """
        INSERT INTO link_stats (node_id, link, kind, sent, delivered, lost, out_of_range) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (node_id, link, kind) DO UPDATE SET sent = excluded.sent, delivered = excluded.delivered,
            lost = excluded.lost, out_of_range = excluded.out_of_range
        """
    private static let insertSampleSQL = """
        INSERT INTO link_samples (node_id, link, kind, sent_at, modelled_at, actual_at) VALUES (?, ?, ?, ?, ?, ?)
        """
    private static let insertHandoverSQL = """
        INSERT INTO handovers (vehicle_id, at, event, from_cell, to_cell, x, y) VALUES (?, ?, ?, ?, ?, ?, ?)
        """

    /// Writes a batch's link records inside the caller's transaction: link totals upserted (the
    /// latest totals win), samples and handovers appended.
    static func apply(_ batch: RecordBatch, in db: Database) throws {
        if !batch.linkStats.isEmpty {
            let statement = try db.cachedStatement(sql: upsertStatSQL)
            for s in batch.linkStats {
                try statement.execute(arguments: [s.nodeID, s.link, s.kind, s.sent, s.delivered, s.lost, s.outOfRange])
            }
        }
        if !batch.linkSamples.isEmpty {
            let statement = try db.cachedStatement(sql: insertSampleSQL)
            for s in batch.linkSamples {
                try statement.execute(arguments: [s.nodeID, s.link, s.kind, s.sentAt, s.modelledAt, s.actualAt])
            }
        }
        if !batch.handovers.isEmpty {
            let statement = try db.cachedStatement(sql: insertHandoverSQL)
            for h in batch.handovers {
                try statement.execute(arguments: [h.vehicleID, h.at, h.event, h.fromCell, h.toCell, h.x, h.y])
            }
        }
    }
}

extension RunDatabase {
    /// Link totals, by node, link and kind.
    public func fetchLinkStats() throws -> [LinkStatRecord] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM link_stats ORDER BY node_id, link, kind").map { row in
                LinkStatRecord(nodeID: row["node_id"], link: row["link"], kind: row["kind"], sent: row["sent"],
                               delivered: row["delivered"], lost: row["lost"], outOfRange: row["out_of_range"])
            }
        }
    }

    /// Delivery samples, in the order recorded.
    public func fetchLinkSamples() throws -> [LinkSampleRecord] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM link_samples ORDER BY id").map { row in
                LinkSampleRecord(nodeID: row["node_id"], link: row["link"], kind: row["kind"], sentAt: row["sent_at"],
                                 modelledAt: row["modelled_at"], actualAt: row["actual_at"])
            }
        }
    }

    /// Serving-cell changes, in the order recorded.
    public func fetchHandovers() throws -> [HandoverRecord] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM handovers ORDER BY id").map { row in
                HandoverRecord(vehicleID: row["vehicle_id"], at: row["at"], event: row["event"], fromCell: row["from_cell"],
                               toCell: row["to_cell"], x: row["x"], y: row["y"])
            }
        }
    }
}
