import GRDB

/// Errors of the run database and its export, worded for the user who typed the command.
///
/// `description` is a complete, single-line message that names the file or directory concerned;
/// print it as is.
public enum RecordingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `directory` has no `run.sqlite`: it is not (or not yet) the directory of a Convoy run.
    case notARunDirectory(String)
    /// The database file `path` does not exist.
    case missingDatabase(String)
    /// `path` exists but is not a Convoy run database; `reason` says what is wrong with it.
    case notAConvoyDatabase(path: String, reason: String)
    /// `path` was written by a newer Convoy: it has schema migrations this build does not know.
    case newerSchema(path: String, unknownMigrations: [String])
    /// `path` was written by an older Convoy: it lacks schema migrations of this build (and so the
    /// tables they create), and it is opened read-only, so they are not applied. Thrown when such a
    /// table is asked for.
    case olderSchema(path: String, missingMigrations: [String])
    /// The database could not be created or opened; `reason` is SQLite's or the file system's.
    case cannotOpen(path: String, reason: String)
    /// An export asked for tables that do not exist.
    case unknownTables([String], known: [String])
    /// `recordNodeStarted` for a node incarnation that was already recorded.
    case duplicateNode(nodeID: String, incarnation: Int)
    /// `recordNodeEnded` for a node incarnation that was never recorded as started.
    case unknownNode(nodeID: String, incarnation: Int)
    /// `recordFaultEnded` for a fault id that does not exist.
    case unknownFault(id: Int64)
    /// A write on a database opened with `RunDatabase.openForReading`.
    case readOnly(path: String)
    /// A stored value that this build cannot interpret (for example an unknown request status).
    case invalidValue(table: String, column: String, value: String)
    /// Writing an export file failed.
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .notARunDirectory(let directory):
            return "\(directory): not a Convoy run directory (no \(RunDatabase.fileName))"
        case .missingDatabase(let path):
            return "\(path): no such file"
        case .notAConvoyDatabase(let path, let reason):
            return "\(path): not a Convoy run database (\(reason))"
        case .newerSchema(let path, let unknown):
            return "\(path): written by a newer version of Convoy (unknown schema migrations: "
                + unknown.joined(separator: ", ") + "); use that version or a newer one to read it"
        case .olderSchema(let path, let missing):
            return "\(path): written by an older version of Convoy (missing schema migrations: "
                + missing.joined(separator: ", ") + "), so it lacks the tables those add"
        case .cannotOpen(let path, let reason):
            return "\(path): cannot open run database: \(reason)"
        case .unknownTables(let tables, let known):
            let noun = tables.count == 1 ? "table" : "tables"
            return "unknown \(noun) " + tables.map { "'\($0)'" }.joined(separator: ", ")
                + "; known tables: " + known.joined(separator: ", ")
        case .duplicateNode(let nodeID, let incarnation):
            return "node '\(nodeID)' incarnation \(incarnation) was already recorded as started"
        case .unknownNode(let nodeID, let incarnation):
            return "node '\(nodeID)' incarnation \(incarnation) was never recorded as started"
        case .unknownFault(let id):
            return "no fault with id \(id)"
        case .readOnly(let path):
            return "\(path): opened read-only; cannot record into it"
        case .invalidValue(let table, let column, let value):
            return "\(table).\(column): unexpected value '\(value)'"
        case .cannotWrite(let path, let reason):
            return "\(path): cannot write: \(reason)"
        }
    }
}

extension RecordingError {
    /// SQLite's or the system's words for a failed write (e.g. "database or disk is full").
    public static func reason(of error: any Error) -> String {
        if let database = error as? DatabaseError { return database.message ?? "\(database.resultCode)" }
        return "\(error)"
    }
}
