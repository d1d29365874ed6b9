import ConvoyCore
import ConvoyWire
import GRDB

/// A record type stored in a table of `run.sqlite`: GRDB derives its columns from its coding keys
/// (no hand-written row mappers or positional argument lists). A new table is one such type, its
/// migration in `Schema`, and its line in `Schema.recordTables`; export picks it up from there.
protocol RecordedTable: FetchableRecord, PersistableRecord, Sendable {
    /// The row order of the table's export (and of `fetchAll(ordered:)`).
    static var exportOrder: String { get }
}

extension RecordedTable {
    /// Every row, in export order.
    static func fetchAllOrdered(_ db: Database) throws -> [Self] {
        try fetchAll(db, sql: "SELECT * FROM \(databaseTableName) ORDER BY \(exportOrder)")
    }
}

extension NodeRow: RecordedTable {
    public static let databaseTableName = "nodes"
    static let exportOrder = "started_at, node_id, incarnation"
}

extension RequestRecord: RecordedTable {
    public static let databaseTableName = "requests"
    static let exportOrder = "created_at, request_id"
}

extension AttemptRecord: RecordedTable {
    public static let databaseTableName = "attempts"
    static let exportOrder = "request_id, attempt"
}

extension FaultRow: RecordedTable {
    public static let databaseTableName = "faults"
    static let exportOrder = "id"
}

extension DetectionRecord: RecordedTable {
    public static let databaseTableName = "detections"
    static let exportOrder = "id"
}

extension CounterRecord: RecordedTable {
    public static let databaseTableName = "counters"
    static let exportOrder = "node_id, name"
}

extension LinkStatRecord: RecordedTable {
    public static let databaseTableName = "link_stats"
    static let exportOrder = "node_id, link, kind"
}

extension LinkSampleRecord: RecordedTable {
    public static let databaseTableName = "link_samples"
    static let exportOrder = "id"
}

extension HandoverRecord: RecordedTable {
    public static let databaseTableName = "handovers"
    static let exportOrder = "id"
}

extension OutputRecord: RecordedTable {
    public static let databaseTableName = "outputs"
    static let exportOrder = "id"
}

extension FedRoundRecord: RecordedTable {
    public static let databaseTableName = "fed_rounds"
    static let exportOrder = "id"
}

extension FedUpdateRecord: RecordedTable {
    public static let databaseTableName = "fed_updates"
    static let exportOrder = "id"
}

extension FedEvalRecord: RecordedTable {
    public static let databaseTableName = "fed_evals"
    static let exportOrder = "id"
}

extension AnalyticsCellRecord: RecordedTable {
    public static let databaseTableName = "analytics_cells"
    static let exportOrder = "id"
}

extension FedUpdateRecord.Outcome: DatabaseValueConvertible {}
extension RequestStatus: DatabaseValueConvertible {}
extension NodeRole: DatabaseValueConvertible {}

extension Database {
    /// Inserts `record`, or, when a row with the same `key` exists, replaces its other columns
    /// where `condition` holds (SQL over `excluded.` and the table's columns; nil: always).
    /// The columns are the record's own (its coding keys).
    func upsert<R: RecordedTable>(_ record: R, key: [String], where condition: String? = nil) throws {
        let values = try record.databaseDictionary
        let columns = values.keys.sorted()
        let updates = columns.filter { !key.contains($0) }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        var sql = """
            INSERT INTO \(R.databaseTableName) (\(columns.joined(separator: ", "))) \
            VALUES (\(Array(repeating: "?", count: columns.count).joined(separator: ", "))) \
            ON CONFLICT (\(key.joined(separator: ", "))) DO UPDATE SET \(updates)
            """
        if let condition { sql += " WHERE \(condition)" }
        try cachedStatement(sql: sql).execute(arguments: StatementArguments(columns.map { values[$0]! }))
    }
}
