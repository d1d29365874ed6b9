import ConvoyWire
import Foundation

/// A fresh, empty directory under the system temporary directory; removed by `cleanUp()`.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "convoy-recording-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func makeRequest(_ id: String, vehicle: String = "v1", createdAt: Double = 1, status: RequestStatus? = nil,
                 latencyMs: Double? = nil) -> RequestRecord {
    RequestRecord(requestID: id, vehicleID: vehicle, createdAt: createdAt, deadlineAt: createdAt + 0.5,
                  model: "llama-7b", inputTokens: 128, outputTokens: 32, payloadBytes: 2048, status: status,
                  finishedAt: status == nil ? nil : createdAt + (latencyMs ?? 0) / 1000, servedBy: status == nil ? nil : "edge1",
                  path: status == nil ? nil : "rsu", attempts: status == nil ? 0 : 1, latencyMs: latencyMs,
                  deadlineMet: status == nil ? nil : status == .completed)
}

/// A strict RFC 4180 parser: fields separated by commas, records by CRLF, quoted fields may hold
/// commas, CR, LF and doubled quotes. Returns nil for malformed input (bare LF line ends, a quote
/// inside an unquoted field, text after a closing quote, an unterminated quote).
func parseCSV(_ text: String) -> [[String]]? {
    var records: [[String]] = []
    var record: [String] = []
    var field = String.UnicodeScalarView()
    let scalars = Array(text.unicodeScalars)
    var i = 0
    var atFieldStart = true
    while i < scalars.count {
        let c = scalars[i]
        if atFieldStart && c == "\"" {
            i += 1
            while true {
                guard i < scalars.count else { return nil }
                if scalars[i] == "\"" {
                    if i + 1 < scalars.count && scalars[i + 1] == "\"" {
                        field.append("\"")
                        i += 2
                    } else {
                        i += 1
                        break
                    }
                } else {
                    field.append(scalars[i])
                    i += 1
                }
            }
            atFieldStart = false
            guard i == scalars.count || scalars[i] == "," || scalars[i] == "\r" else { return nil }
            continue
        }
        switch c {
        case ",":
            record.append(String(field))
            field = String.UnicodeScalarView()
            atFieldStart = true
            i += 1
        case "\r":
            guard i + 1 < scalars.count, scalars[i + 1] == "\n" else { return nil }
            record.append(String(field))
            records.append(record)
            record = []
            field = String.UnicodeScalarView()
            atFieldStart = true
            i += 2
        case "\n", "\"":
            return nil
        default:
            field.append(c)
            atFieldStart = false
            i += 1
        }
    }
    if !record.isEmpty || !field.isEmpty {  // last record without a line end
        record.append(String(field))
        records.append(record)
    }
    return records
}

/// How the export writes a value.
func csv(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
func csv(_ value: Int?) -> String { value.map { String($0) } ?? "" }
func csv(_ value: Int64?) -> String { value.map { String($0) } ?? "" }
func csv(_ value: String?) -> String { value ?? "" }
func csv(_ value: Bool?) -> String { value.map { $0 ? "1" : "0" } ?? "" }
