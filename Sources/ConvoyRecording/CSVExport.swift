import Foundation
import GRDB

/// Export of a run database as CSV files, one per table.
public enum CSVExport {
    /// The exportable tables, in export order.
    public static var tableNames: [String] { Schema.tables.map(\.name) }

    /// The name under which `--table` selects the per-second time series (`timeseries.csv`).
    public static let timeSeriesName = "timeseries"

    /// Everything `export` can write: the tables, then the time series.
    public static var exportNames: [String] { tableNames + [timeSeriesName] }

    /// The column a time window filters each table on; tables not listed (`counters`, `run_info`)
    /// are exported whole whatever the window.
    public static let windowColumns: [String: String] = [
        "nodes": "started_at", "requests": "created_at", "attempts": "sent_at", "faults": "started_at",
        "detections": "at", "link_samples": "sent_at", "handovers": "at",
        "outputs": "started_at", "fed_rounds": "ended_at", "fed_updates": "upload_started_at", "fed_evals": "at",
        "analytics_cells": "at",
    ]

    /// Writes `NAME.csv` for each name of `tables` (every table and the time series when nil) into
    /// `directory`, which is created if needed, and returns each written file's row count, keyed by
    /// name (`timeseries` for the time series).
    ///
    /// Files are RFC 4180 CSV: a header row of the column names, CRLF line ends, a field quoted
    /// (quotes doubled) when it contains a comma, quote, CR or LF. NULL is an empty field,
    /// integers are written as integers and reals in Swift's shortest round-trip form
    /// (`0.1`, `12.0`, `1e-05`). Rows are in a stable order (see `Schema.tables`), streamed from
    /// one consistent snapshot of the database; a file appears complete or not at all (it is
    /// written under a temporary name and renamed).
    ///
    /// With a `window`, a table keeps the rows whose time column (`windowColumns`) lies in
    /// `[since, until]`, ends included; `counters` and `run_info` are whole. The time series keeps
    /// the seconds `s` with `since ≤ s ≤ until` (see `TimeSeries.rows` for its columns), computed
    /// from the whole run, so a second's figures do not depend on the window.
    ///
    /// - Parameter databasePath: `RUN_DIR/run.sqlite` or `RUN_DIR` (see
    ///   `RunDatabase.openForReading(path:)`, whose errors this throws too).
    /// A database written by an older Convoy lacks the tables of later migrations: they are
    /// skipped (no file, no count) when `tables` is nil.
    ///
    /// - Throws: `RecordingError.unknownTables` (listing the known names) before anything is
    ///   written when `tables` names a table that does not exist; `.olderSchema` when it names a
    ///   table this database is too old to have; `.cannotWrite` when the directory or a file
    ///   cannot be written.
    @discardableResult
    public static func export(databasePath: String, to directory: String, tables: [String]?,
                              window: TimeWindow = TimeWindow()) throws -> [String: Int] {
        var selected: [(name: String, orderBy: String)] = Schema.tables
        var withTimeSeries = true
        if let tables {
            let unknown = tables.filter { !exportNames.contains($0) }
            if !unknown.isEmpty {
                var seen = Set<String>()
                throw RecordingError.unknownTables(unknown.filter { seen.insert($0).inserted }, known: exportNames)
            }
            selected = Schema.tables.filter { tables.contains($0.name) }
            withTimeSeries = tables.contains(timeSeriesName)
        }
        let database = try RunDatabase.openForReading(path: databasePath)
        defer { try? database.close() }
        try createDirectory(directory)
        func file(_ name: String) -> String {
            directory.hasSuffix("/") ? directory + name + ".csv" : directory + "/" + name + ".csv"
        }
        return try database.writer.read { db in
            // A database of an older Convoy lacks the tables of later migrations: skipped, unless asked for.
            let absent = try selected.map(\.name).filter { try !db.tableExists($0) }
            if tables != nil, !absent.isEmpty {
                throw RecordingError.olderSchema(path: database.path, missingMigrations: database.missingMigrations)
            }
            var counts: [String: Int] = [:]
            for table in selected where !absent.contains(table.name) {
                let condition = windowColumns[table.name].map { window.sqlCondition(column: $0) } ?? ("1", [])
                counts[table.name] = try exportTable(db, table: table.name, where: condition, orderBy: table.orderBy,
                                                     to: file(table.name))
            }
            if withTimeSeries {
                let snapshot = try RunDatabase.snapshot(db)
                let rows = TimeSeries.rows(requests: snapshot.requests, nodes: snapshot.nodes, faults: snapshot.faults)
                    .filter { window.contains(Double($0.second)) }
                try writeFile(file(timeSeriesName)) { writer in
                    writer.writeRecord(TimeSeries.columns)
                    for row in rows {
                        writer.writeRecord(TimeSeries.fields(row))
                        try writer.flushIfFull()
                    }
                }
                counts[timeSeriesName] = rows.count
            }
            return counts
        }
    }

    private static func createDirectory(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            if !isDirectory.boolValue {
                throw RecordingError.cannotWrite(path: directory, reason: "exists and is not a directory")
            }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw RecordingError.cannotWrite(path: directory, reason: "\(error.localizedDescription)")
        }
    }

    private static func exportTable(_ db: Database, table: String, where condition: (sql: String, arguments: [Double]),
                                    orderBy: String, to file: String) throws -> Int {
        let statement = try db.makeStatement(sql: "SELECT * FROM \(table) WHERE \(condition.sql) ORDER BY \(orderBy)")
        statement.arguments = StatementArguments(condition.arguments)
        let columnCount = statement.columnCount
        var rowCount = 0
        try writeFile(file) { writer in
            writer.writeRecord(statement.columnNames)
            let rows = try Row.fetchCursor(statement)
            var fields = [String](repeating: "", count: columnCount)
            while let row = try rows.next() {
                for index in 0..<columnCount {
                    fields[index] = field(row[index] as DatabaseValue)
                }
                writer.writeRecord(fields)
                try writer.flushIfFull()
                rowCount += 1
            }
        }
        return rowCount
    }

    /// Writes `file` through `body` under a temporary name, then renames it: the file appears
    /// complete or not at all.
    private static func writeFile(_ file: String, _ body: (inout BufferedFileWriter) throws -> Void) throws {
        let temporary = file + ".partial"
        var writer = try BufferedFileWriter(path: temporary)
        do {
            try body(&writer)
            try writer.close()
        } catch {
            try? writer.close()
            try? FileManager.default.removeItem(atPath: temporary)
            throw error
        }
        if rename(temporary, file) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(atPath: temporary)
            throw RecordingError.cannotWrite(path: file, reason: reason)
        }
    }

    /// The CSV text of one value (unquoted).
    static func field(_ value: DatabaseValue) -> String {
        switch value.storage {
        case .null: return ""
        case .int64(let integer): return String(integer)
        case .double(let real): return "\(real)"
        case .string(let text): return text
        case .blob(let data): return data.map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined()
        }
    }

    /// `text` as an RFC 4180 field: quoted, with quotes doubled, when it contains a comma, quote,
    /// CR or LF; as is otherwise.
    public static func escape(_ text: String) -> String {
        let needsQuotes = text.utf8.contains { byte in
            switch byte {
            case UInt8(ascii: ","), UInt8(ascii: "\""), UInt8(ascii: "\r"), UInt8(ascii: "\n"): return true
            default: return false
            }
        }
        guard needsQuotes else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// Writes bytes to a new file through a 64 KiB buffer.
private struct BufferedFileWriter {
    private let path: String
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private static let capacity = 64 * 1024

    init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw RecordingError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
        self.path = path
        self.handle = handle
        buffer.reserveCapacity(Self.capacity + 4096)
    }

    mutating func writeRecord(_ fields: [String]) {
        for (index, text) in fields.enumerated() {
            if index > 0 { buffer.append(UInt8(ascii: ",")) }
            buffer.append(contentsOf: CSVExport.escape(text).utf8)
        }
        buffer.append(contentsOf: [UInt8(ascii: "\r"), UInt8(ascii: "\n")])
    }

    mutating func flushIfFull() throws {
        if buffer.count >= Self.capacity { try flush() }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw RecordingError.cannotWrite(path: path, reason: error.localizedDescription)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    mutating func close() throws {
        try flush()
        try handle.close()
    }
}
