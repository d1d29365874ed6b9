import ConvoyCore
import ConvoyReasoning
import Foundation

/// Request arrivals listed in a file (scenario `workload.arrival: file`, `workload.arrivals: PATH`).
///
/// CSV with a header line naming the columns `time`, `vehicle` and, optionally, `task` (any order):
/// `time` is emulated seconds since the run started, `vehicle` a vehicle id of the trace, `task` a
/// task of the mix (empty or absent: drawn from the mix by weight). Blank lines and lines starting
/// with `#` are ignored. Arrivals outside a vehicle's time in the trace are skipped (counted).
public struct ArrivalFile: Sendable, Equatable {
    public struct Arrival: Sendable, Equatable {
        public var time: Double
        /// nil: drawn from the mix.
        public var task: String?

        public init(time: Double, task: String?) {
            self.time = time
            self.task = task
        }
    }

    /// Per vehicle, in time order.
    public private(set) var arrivals: [String: [Arrival]]
    /// The file and the line where each vehicle first appears (for errors found later).
    let file: String
    var firstLine: [String: Int] = [:]

    public var count: Int { arrivals.values.reduce(0) { $0 + $1.count } }

    public static func load(path: String, tasks: [TaskSpec]) throws -> ArrivalFile {
        let data = try readWholeFile(path: path, expected: "an arrivals file (CSV)")
        return try parse(YAMLFields.utf8Text(Array(data), file: path), file: path, tasks: tasks)
    }

    public static func parse(_ text: String, file: String, tasks: [TaskSpec]) throws -> ArrivalFile {
        var columns: [String: Int]?
        var arrivals: [String: [Arrival]] = [:]
        var firstLine: [String: Int] = [:]
        let taskNames = Set(tasks.map(\.name))
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let trimmed = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let fields = trimmed.split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
            guard let header = columns else {
                var found: [String: Int] = [:]
                for (i, name) in fields.enumerated() {
                    guard ["time", "vehicle", "task"].contains(name) else {
                        throw InputError(file: file, line: line, field: name,
                                         "unknown column (expected a header naming time, vehicle and optionally task)")
                    }
                    guard found[name] == nil else { throw InputError(file: file, line: line, field: name, "column named twice") }
                    found[name] = i
                }
                for required in ["time", "vehicle"] where found[required] == nil {
                    throw InputError(file: file, line: line, field: required, "missing column (the header must name time and vehicle)")
                }
                columns = found
                continue
            }
            guard fields.count == header.count else {
                throw InputError(file: file, line: line, "expected \(header.count) fields, got \(fields.count)")
            }
            let timeText = fields[header["time"]!]
            guard let time = Double(timeText), time.isFinite, time >= 0 else {
                throw InputError(file: file, line: line, field: "time", "expected seconds ≥ 0, got '\(timeText)'")
            }
            let vehicle = fields[header["vehicle"]!]
            guard !vehicle.isEmpty else { throw InputError(file: file, line: line, field: "vehicle", "empty vehicle id") }
            var task: String?
            if let column = header["task"], !fields[column].isEmpty {
                guard taskNames.contains(fields[column]) else {
                    throw InputError(file: file, line: line, field: "task",
                                     "unknown task '\(fields[column])' (tasks: \(tasks.map(\.name).joined(separator: ", ")))")
                }
                task = fields[column]
            }
            arrivals[vehicle, default: []].append(Arrival(time: time, task: task))
            if firstLine[vehicle] == nil { firstLine[vehicle] = line }
        }
        guard columns != nil else { throw InputError(file: file, line: 1, "empty: expected a header line `time,vehicle,task`") }
        for key in arrivals.keys { arrivals[key]!.sort { $0.time < $1.time } }
        return ArrivalFile(arrivals: arrivals, file: file, firstLine: firstLine)
    }

    /// Throws for the first listed vehicle (by line) that is not among `vehicles` (the trace's).
    public func checkVehicles(in vehicles: Set<String>, trace: String) throws {
        for (vehicle, line) in firstLine.sorted(by: { $0.value < $1.value }) where !vehicles.contains(vehicle) {
            throw InputError(file: file, line: line, field: "vehicle", "vehicle '\(vehicle)' is not in the trace \(trace)")
        }
    }
}
