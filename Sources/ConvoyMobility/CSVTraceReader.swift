import ConvoyCore
import Foundation

/// Reads CSV traces, streaming: SUMO's FCD CSV and plain CSV.
///
/// The header names the columns; the separator is `;` or `,` (whichever the header uses more).
/// Column names are matched case-insensitively, after dropping SUMO's `timestep_` and `vehicle_`
/// prefixes: required are `time`, `id` and either `x`,`y` or `lon`,`lat`; `speed` and `angle` are read
/// when present (an empty field is "not given"); every other column is ignored. Fields may be quoted
/// per RFC 4180 (`"a ""b"", c"`), including line breaks inside quotes; CRLF or LF line ends; blank
/// lines are skipped; a UTF-8 BOM is skipped.
///
/// Rows may come in any order across vehicles (time-major or vehicle-major), but each vehicle's rows
/// must be in strictly increasing time.
enum CSVTraceReader {
    /// The columns a header maps to, by index.
    struct Columns {
        var time = -1, id = -1, x = -1, y = -1, speed: Int?, angle: Int?
        var geographic = false
        var count = 0
        var names: [String] = []
    }

    /// Whether the first line of `prefix` is a CSV trace header, and which format. A header is a line
    /// of at least two fields, two of which are columns a trace may have (time, id, x, y, lon, lat,
    /// speed, angle, with SUMO's prefixes): then it is a CSV trace, and a missing required column is
    /// named by `read` rather than reported as an unknown format.
    static func detect(prefix: ArraySlice<UInt8>) -> TraceFormat? {
        var firstLine = prefix.prefix { $0 != UInt8(ascii: "\n") }
        if firstLine.last == UInt8(ascii: "\r") { firstLine.removeLast() }
        let separator = separator(of: firstLine)
        guard let record = try? CSVScanner.scan(firstLine, separator: separator, final: true)?.fields,
            isHeader(record)
        else { return nil }
        let sumo = separator == UInt8(ascii: ";") && record.contains { $0.lowercased().hasPrefix("timestep_") }
        return sumo ? .sumoFCDCSV : .plainCSV
    }

    static func separator(of line: ArraySlice<UInt8>) -> UInt8 {
        let semicolons = line.reduce(0) { $1 == UInt8(ascii: ";") ? $0 + 1 : $0 }
        let commas = line.reduce(0) { $1 == UInt8(ascii: ",") ? $0 + 1 : $0 }
        return semicolons > commas ? UInt8(ascii: ";") : UInt8(ascii: ",")
    }

    static func normalized(_ name: String) -> String {
        var name = name.trimmingCharacters(in: .whitespaces).lowercased()
        for prefix in ["timestep_", "vehicle_"] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        return name
    }

    /// The column names a trace header may have (after `normalized`).
    static let knownColumns: Set<String> = ["time", "id", "x", "y", "lon", "lat", "speed", "angle"]

    /// Whether `record` looks like a trace header (see `detect`).
    static func isHeader(_ record: [String]) -> Bool {
        record.count >= 2 && record.lazy.filter { knownColumns.contains(normalized($0)) }.prefix(2).count == 2
    }

    /// The required columns a header lacks (normalized names, e.g. ["x"]), in the order time, id,
    /// then the coordinates: x and y when either is there, else lon and lat when either is there,
    /// else both pairs as "x", "y" (or lon, lat). Empty when nothing is missing.
    static func missingColumns(_ header: [String]) -> [String] {
        let names = Set(header.map(normalized))
        var missing = ["time", "id"].filter { !names.contains($0) }
        if names.contains("x") || names.contains("y") {
            missing += ["x", "y"].filter { !names.contains($0) }
        } else if names.contains("lon") || names.contains("lat") {
            missing += ["lon", "lat"].filter { !names.contains($0) }
        } else {
            missing += ["x", "y"]
        }
        return missing
    }

    /// The error for a header that lacks required columns, e.g. `CSV header has id, time, y but no
    /// column x (expected columns: …)`, on the header's line, with the first missing column as field.
    static func missingColumnsError(_ header: [String], missing: [String], file: String, line: Int) -> InputError {
        let shown = header.prefix(12).map { excerpt($0.trimmingCharacters(in: .whitespaces)) }.joined(separator: ", ")
            + (header.count > 12 ? ", …" : "")
        var wanted = missing.joined(separator: ", ")
        if missing.suffix(2) == ["x", "y"], !header.contains(where: { ["x", "y"].contains(normalized($0)) }) {
            wanted += " (or lon, lat)"
        }
        return InputError(
            file: file, line: line, field: missing.first,
            "CSV header has \(shown) but no column\(missing.count == 1 ? "" : "s") \(wanted) "
                + "(expected columns: time, id, x, y or lon, lat; optionally speed, angle)")
    }

    /// The column mapping of a header, or nil when it lacks a required column (see `missingColumns`).
    static func columns(_ header: [String]) -> Columns? {
        var c = Columns()
        c.count = header.count
        c.names = header.map(normalized)
        for (index, name) in c.names.enumerated() {
            switch name {
            case "time" where c.time < 0: c.time = index
            case "id" where c.id < 0: c.id = index
            case "x" where c.x < 0: c.x = index
            case "y" where c.y < 0: c.y = index
            case "speed" where c.speed == nil: c.speed = index
            case "angle" where c.angle == nil: c.angle = index
            default: break
            }
        }
        if c.x < 0, c.y < 0, let lon = c.names.firstIndex(of: "lon"), let lat = c.names.firstIndex(of: "lat") {
            c.x = lon
            c.y = lat
            c.geographic = true
        }
        guard c.time >= 0, c.id >= 0, c.x >= 0, c.y >= 0 else { return nil }
        return c
    }

    static func read(_ buffer: inout StreamBuffer, into assembler: inout TraceAssembler) throws(InputError) {
        let file = buffer.file
        if try buffer.peek(maxBytes: 3).elementsEqual(utf8BOM) { buffer.position += 3 }
        var reader = RecordReader()
        guard let header = try reader.next(&buffer) else {
            throw InputError(file: file, "empty file; expected a CSV header with time, id, x and y columns")
        }
        guard let columns = columns(header.fields) else {
            throw missingColumnsError(header.fields, missing: missingColumns(header.fields), file: file, line: header.line)
        }
        assembler.declared = columns.geographic ? .geographic : .unstated
        let names = SampleFieldNames(
            time: columns.names[columns.time], x: columns.names[columns.x], y: columns.names[columns.y],
            speed: columns.speed.map { columns.names[$0] } ?? "speed", angle: columns.angle.map { columns.names[$0] } ?? "angle")
        while let row = try reader.next(&buffer) {
            try readRow(row, columns: columns, names: names, file: file, into: &assembler)
        }
    }

    private static func readRow(
        _ row: CSVScanner.Record, columns: Columns, names: SampleFieldNames, file: String, into assembler: inout TraceAssembler
    ) throws(InputError) {
        let fields = row.fields
        guard fields.count == columns.count else {
            throw InputError(
                file: file, line: row.line,
                "expected \(columns.count) fields (\(excerpt(columns.names.joined(separator: ","), limit: 120))), found \(fields.count)")
        }
        func number(_ index: Int, what: String) throws(InputError) -> Double {
            guard let value = parseDecimal(ArraySlice(fields[index].utf8)) else {
                throw InputError(
                    file: file, line: row.line, field: columns.names[index], "expected \(what), found \"\(excerpt(fields[index]))\"")
            }
            return value
        }
        func optionalNumber(_ index: Int?) throws(InputError) -> Double? {
            guard let index, fields[index].contains(where: { $0 != " " && $0 != "\t" }) else { return nil }
            return try number(index, what: "a number or nothing")
        }
        let coordinate = columns.geographic ? "degrees" : "a coordinate in metres"
        let time = try number(columns.time, what: "a number of seconds")
        let id = fields[columns.id]
        guard !id.isEmpty else {
            throw InputError(file: file, line: row.line, field: "id", "empty vehicle id; expected a non-empty id")
        }
        let x = try number(columns.x, what: coordinate)
        let y = try number(columns.y, what: coordinate)
        let sample = TraceSample(
            time: time, position: Position(x: x, y: y), speed: try optionalNumber(columns.speed),
            angle: try optionalNumber(columns.angle))
        switch try assembler.append(sample, vehicleID: id, line: row.line, names: names) {
        case nil:
            break
        case .sameTime:
            throw InputError(
                file: file, line: row.line, field: "id",
                "vehicle \"\(excerpt(id))\" appears twice at time \(excerpt(fields[columns.time]))")
        case .earlier(let previous):
            throw InputError(
                file: file, line: row.line, field: "time",
                "time goes backwards for vehicle \"\(excerpt(id))\" (\(excerpt(fields[columns.time])) after \(describeNumber(previous))); "
                    + "expected increasing times per vehicle")
        }
    }

    /// Pulls records from a `StreamBuffer`, refilling when a record runs past the window.
    ///
    /// A record (with any line breaks inside quotes) is at most `TraceLimits.maxLineLength` bytes;
    /// a longer one is an error on its first line. That bound also keeps the scanning linear: an
    /// incomplete record is scanned again after each refill, but the window never holds more than
    /// the limit plus one chunk of it.
    struct RecordReader {
        var separator: UInt8 = UInt8(ascii: ",")
        private var line = 1
        private var sawHeader = false

        mutating func next(_ buffer: inout StreamBuffer) throws(InputError) -> CSVScanner.Record? {
            while true {
                if !sawHeader {
                    // The header line decides the separator.
                    let window = buffer.bytes[buffer.position...]
                    if let newline = window.firstIndex(of: CSVScanner.newline) {
                        separator = CSVTraceReader.separator(of: window[..<newline])
                    } else if buffer.ended {
                        separator = CSVTraceReader.separator(of: window)
                    } else {
                        if buffer.pendingExceedsLimit { throw buffer.tooLong(line: line) }
                        _ = try buffer.refill()
                        continue
                    }
                    sawHeader = true
                }
                let scanned: CSVScanner.Scanned?
                do {
                    scanned = try CSVScanner.scan(buffer.bytes[buffer.position...], separator: separator, final: buffer.ended)
                } catch {
                    throw InputError(file: buffer.file, line: line + error.line - 1, error.message)
                }
                if let scanned {
                    // The line end (LF, or CRLF) does not count.
                    guard scanned.end - buffer.position <= TraceLimits.maxLineLength + 2 else { throw buffer.tooLong(line: line) }
                    let record = CSVScanner.Record(line: line, fields: scanned.fields)
                    line += scanned.lines
                    buffer.position = scanned.end
                    if scanned.fields.count == 1, scanned.fields[0].isEmpty { continue }  // blank line
                    return record
                }
                if buffer.ended { return nil }
                if buffer.pendingExceedsLimit { throw buffer.tooLong(line: line) }
                _ = try buffer.refill()
            }
        }
    }
}

/// A minimal RFC 4180 record scanner over UTF-8 bytes.
enum CSVScanner {
    struct Record {
        /// 1-based line on which the record starts.
        var line: Int
        var fields: [String]
    }

    struct SyntaxError: Error {
        /// 1-based line relative to the scanned bytes.
        var line: Int
        var message: String
    }

    struct Scanned {
        var fields: [String]
        /// Index after the record's line end.
        var end: Int
        /// Line breaks consumed (inside quotes and the final one).
        var lines: Int
    }

    static let quote = UInt8(ascii: "\"")
    static let newline = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    /// Scans one record at the start of `bytes`. Returns nil when the record is not complete in
    /// `bytes` and more may come (`final` false); at the end of input (`final`), a record without a line
    /// end is complete, and nil means no bytes at all.
    static func scan(_ bytes: ArraySlice<UInt8>, separator: UInt8, final: Bool) throws(SyntaxError) -> Scanned? {
        var fields: [String] = []
        var field: [UInt8] = []
        var index = bytes.startIndex
        var lines = 0
        guard index < bytes.endIndex else { return nil }
        while true {
            guard index < bytes.endIndex else {
                guard final else { return nil }
                fields.append(String(decoding: field, as: UTF8.self))
                return Scanned(fields: fields, end: index, lines: lines)
            }
            let byte = bytes[index]
            if byte == quote && field.isEmpty {
                index += 1
                // Quoted field: through its closing quote.
                var closed = false
                while index < bytes.endIndex {
                    let b = bytes[index]
                    index += 1
                    if b == quote {
                        if index < bytes.endIndex && bytes[index] == quote {
                            field.append(quote)
                            index += 1
                        } else if index == bytes.endIndex && !final {
                            return nil  // the next chunk may start with the second quote
                        } else {
                            closed = true
                            break
                        }
                    } else {
                        if b == newline { lines += 1 }
                        field.append(b)
                    }
                }
                guard closed else {
                    if !final { return nil }
                    throw SyntaxError(line: 1, message: "unterminated quoted field; expected a closing quote")
                }
                if index < bytes.endIndex {
                    let next = bytes[index]
                    if next != separator && next != newline && next != carriageReturn {
                        throw SyntaxError(
                            line: lines + 1, message: "unexpected character after a closing quote; expected a separator or a line end")
                    }
                }
                continue
            }
            index += 1
            switch byte {
            case separator:
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
            case newline:
                lines += 1
                fields.append(String(decoding: field, as: UTF8.self))
                return Scanned(fields: fields, end: index, lines: lines)
            case carriageReturn where index < bytes.endIndex && bytes[index] == newline:
                break  // the LF that follows ends the record
            default:
                field.append(byte)
            }
        }
    }
}
