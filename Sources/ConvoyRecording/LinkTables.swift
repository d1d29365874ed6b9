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

    /// Writes a batch's link records inside the caller's transaction: link totals upserted (the
    /// latest totals win), samples and handovers appended.
    static func apply(_ batch: RecordBatch, in db: Database) throws {
        for stat in batch.linkStats { try db.upsert(stat, key: ["node_id", "link", "kind"]) }
        for sample in batch.linkSamples { try sample.insert(db) }
        for handover in batch.handovers { try handover.insert(db) }
    }
}

extension RunDatabase {
    /// Link totals, by node, link and kind.
    public func fetchLinkStats() throws -> [LinkStatRecord] { try writer.read(LinkStatRecord.fetchAllOrdered) }

    /// Delivery samples, in the order recorded.
    public func fetchLinkSamples() throws -> [LinkSampleRecord] { try writer.read(LinkSampleRecord.fetchAllOrdered) }

    /// Serving-cell changes, in the order recorded.
    public func fetchHandovers() throws -> [HandoverRecord] { try writer.read(HandoverRecord.fetchAllOrdered) }
}
