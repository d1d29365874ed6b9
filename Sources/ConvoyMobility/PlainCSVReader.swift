import ConvoyCore
import Foundation

/// Reads plain CSV traces: a header `time,id,x,y` or `time,id,x,y,speed,angle`, then one sample per
/// row. Fields are comma-separated and may be quoted per RFC 4180 (`"a ""b"", c"`), including line
/// breaks inside quotes; CRLF or LF line ends; blank lines are skipped; `speed`/`angle` may be empty.
///
/// Rows may come in any order across vehicles (time-major or vehicle-major), but each vehicle's rows
/// must be in strictly increasing time.
enum PlainCSVReader {
    static let requiredColumns = ["time", "id", "x", "y"]
    static let optionalColumns = ["speed", "angle"]

    /// Whether the first line of `prefix` is a plain-CSV trace header. Throws for a geo header
    /// (`time,id,lon,lat`), which is recognised but not supported yet.
    static func detect(prefix: ArraySlice<UInt8>, file: String) throws(InputError) -> TraceFormat? {
        var firstLine = prefix.prefix { $0 != UInt8(ascii: "\n") }
        if firstLine.last == UInt8(ascii: "\r") { firstLine.removeLast() }
        var scanner = CSVScanner(bytes: firstLine)
        guard let record = try? scanner.nextRecord() else { return nil }
        let names = normalized(record.fields)
        if names == requiredColumns || names == requiredColumns + optionalColumns { return .plainCSV }
        if names.count >= 4, names[0] == "time", names[1] == "id", names[2] == "lon" || names[2] == "lat" {
            throw InputError(
                file: file, line: 1, field: names[2],
                "geo coordinates (lon/lat) are not supported yet; expected columns time,id,x,y in metres")
        }
        return nil
    }

    static func normalized(_ fields: [String]) -> [String] {
        fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }

    static func read(path: String, into assembler: inout TraceAssembler) throws(InputError) {
        let data = try readWholeFile(path: path)
        var bytes = [UInt8](data)
        if bytes.starts(with: utf8BOM) { bytes.removeFirst(3) }
        var scanner = CSVScanner(bytes: bytes[...])
        do {
            guard let header = try scanner.nextRecord() else {
                throw InputError(file: path, "empty file; expected the CSV header time,id,x,y[,speed,angle]")
            }
            let columns = normalized(header.fields)
            guard columns == requiredColumns || columns == requiredColumns + optionalColumns else {
                throw InputError(
                    file: path, line: header.line,
                    "unknown CSV header \"\(header.fields.joined(separator: ","))\"; expected time,id,x,y[,speed,angle]")
            }
            while let row = try scanner.nextRecord() {
                try readRow(row, columns: columns, file: path, into: &assembler)
            }
        } catch let error as CSVScanner.SyntaxError {
            throw InputError(file: path, line: error.line, error.message)
        } catch let error as InputError {
            throw error
        } catch {
            throw InputError(file: path, "\(error)")
        }
    }

    private static func readRow(
        _ row: CSVScanner.Record, columns: [String], file: String, into assembler: inout TraceAssembler
    ) throws(InputError) {
        let fields = row.fields
        guard fields.count == columns.count else {
            throw InputError(
                file: file, line: row.line,
                "expected \(columns.count) fields (\(columns.joined(separator: ","))), found \(fields.count)")
        }
        func number(_ index: Int, what: String) throws(InputError) -> Double {
            guard let value = parseNumber(fields[index]) else {
                throw InputError(
                    file: file, line: row.line, field: columns[index], "expected \(what), found \"\(fields[index])\"")
            }
            return value
        }
        func optionalNumber(_ index: Int) throws(InputError) -> Double? {
            guard index < fields.count, fields[index].contains(where: { $0 != " " && $0 != "\t" }) else { return nil }
            return try number(index, what: "a number or nothing")
        }
        let time = try number(0, what: "a number of seconds")
        let id = fields[1]
        guard !id.isEmpty else {
            throw InputError(file: file, line: row.line, field: "id", "empty vehicle id; expected a non-empty id")
        }
        let x = try number(2, what: "a coordinate in metres")
        let y = try number(3, what: "a coordinate in metres")
        let sample = TraceSample(
            time: time, position: Position(x: x, y: y), speed: try optionalNumber(4), angle: try optionalNumber(5))
        switch assembler.append(sample, vehicleID: id) {
        case nil:
            break
        case .sameTime:
            throw InputError(
                file: file, line: row.line, field: "id", "vehicle \"\(id)\" appears twice at time \(fields[0])")
        case .earlier(let previous):
            throw InputError(
                file: file, line: row.line, field: "time",
                "time goes backwards for vehicle \"\(id)\" (\(fields[0]) after \(previous)); expected increasing times per vehicle")
        }
    }
}

/// A minimal RFC 4180 record scanner over UTF-8 bytes.
struct CSVScanner {
    struct Record {
        /// 1-based line on which the record starts.
        var line: Int
        var fields: [String]
    }

    struct SyntaxError: Error {
        var line: Int
        var message: String
    }

    private let bytes: ArraySlice<UInt8>
    private var index: Int
    private var line = 1

    init(bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.index = bytes.startIndex
    }

    private static let comma = UInt8(ascii: ",")
    private static let quote = UInt8(ascii: "\"")
    private static let newline = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")

    /// The next non-blank record, or nil at the end of the input.
    mutating func nextRecord() throws(SyntaxError) -> Record? {
        while index < bytes.endIndex {
            let startLine = line
            let fields = try scanRecord()
            if fields.count == 1, fields[0].isEmpty { continue }  // blank line
            return Record(line: startLine, fields: fields)
        }
        return nil
    }

    /// Scans one record, consuming its line end.
    private mutating func scanRecord() throws(SyntaxError) -> [String] {
        var fields: [String] = []
        var field: [UInt8] = []
        let startLine = line
        while true {
            guard index < bytes.endIndex else {
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            }
            let byte = bytes[index]
            if byte == Self.quote && field.isEmpty {
                index += 1
                try scanQuoted(into: &field, recordLine: startLine)
                // After the closing quote: a separator, a line end, or the end of input.
                if index < bytes.endIndex {
                    let next = bytes[index]
                    if next != Self.comma && next != Self.newline && next != Self.carriageReturn {
                        throw SyntaxError(
                            line: line, message: "unexpected character after a closing quote; expected a comma or a line end")
                    }
                }
                continue
            }
            index += 1
            switch byte {
            case Self.comma:
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
            case Self.newline:
                line += 1
                fields.append(String(decoding: field, as: UTF8.self))
                return fields
            case Self.carriageReturn where index < bytes.endIndex && bytes[index] == Self.newline:
                break  // the LF that follows ends the record
            default:
                field.append(byte)
            }
        }
    }

    /// Scans a quoted field's content after its opening quote, through its closing quote.
    private mutating func scanQuoted(into field: inout [UInt8], recordLine: Int) throws(SyntaxError) {
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if byte == Self.quote {
                if index < bytes.endIndex && bytes[index] == Self.quote {
                    field.append(Self.quote)
                    index += 1
                } else {
                    return
                }
            } else {
                if byte == Self.newline { line += 1 }
                field.append(byte)
            }
        }
        throw SyntaxError(line: recordLine, message: "unterminated quoted field; expected a closing quote")
    }
}
