import ConvoyCore
import Foundation

/// The trace file formats Convoy reads.
public enum TraceFormat: String, Sendable, CaseIterable {
    /// SUMO floating car data, XML flavour (`sumo --fcd-output`), x/y in metres.
    case sumoFCDXML = "sumo-fcd-xml"
    /// Comma-separated with the header `time,id,x,y` or `time,id,x,y,speed,angle`.
    case plainCSV = "csv"
}

/// A whole mobility trace: every vehicle's trajectory.
public struct Trace: Sendable, Equatable {
    /// One trajectory per vehicle, sorted by `start`, then `vehicleID`.
    public var trajectories: [Trajectory]
    /// The format the trace was read from.
    public var format: TraceFormat

    /// A trace from trajectories in any order; they are sorted by `start`, then `vehicleID`.
    public init(trajectories: [Trajectory], format: TraceFormat) {
        self.trajectories = trajectories.sorted(by: Self.precedes)
        self.format = format
    }

    /// The trajectory of the vehicle `vehicleID`, if the trace has one.
    public func trajectory(for vehicleID: String) -> Trajectory? {
        trajectories.first { $0.vehicleID == vehicleID }
    }

    /// Reads a trace file, detecting its format from its content (not its name):
    /// XML whose root element is `<fcd-export>` is SUMO FCD; text whose first line is the header
    /// `time,id,x,y[,speed,angle]` is plain CSV.
    ///
    /// All or nothing: either the whole trace is returned or an `InputError` names the file, the line
    /// (1-based), the field and what was expected. Errors: unreadable or empty file, unknown format,
    /// malformed or truncated XML, a missing attribute or column, a non-numeric or non-finite number,
    /// time going backwards, a vehicle twice at the same time, geo (lon/lat) coordinates (not supported
    /// yet), and a trace without any vehicle.
    public static func load(path: String) throws(InputError) -> Trace {
        let format = try detectFormat(path: path)
        var assembler = TraceAssembler(file: path)
        switch format {
        case .sumoFCDXML: try FCDXMLReader.read(path: path, into: &assembler)
        case .plainCSV: try PlainCSVReader.read(path: path, into: &assembler)
        }
        let trajectories = assembler.trajectories()
        if trajectories.isEmpty {
            throw InputError(file: path, "the trace has no vehicle samples; expected at least one vehicle")
        }
        return Trace(trajectories: trajectories, format: format)
    }

    /// Decides the format from the file's first bytes. New formats (gzip, geo, ns-2, ...) hook in here.
    static func detectFormat(path: String) throws(InputError) -> TraceFormat {
        let prefix = try readPrefix(path: path, maxBytes: 64 * 1024)
        var start = 0
        if prefix.starts(with: utf8BOM) { start = 3 }
        while start < prefix.count, isWhitespace(prefix[start]) { start += 1 }
        guard start < prefix.count else {
            throw InputError(file: path, "empty file; expected a SUMO FCD XML or CSV trace")
        }
        if prefix[start] == UInt8(ascii: "<") {
            // The XML reader checks that the root element is <fcd-export>.
            return .sumoFCDXML
        }
        if let format = try PlainCSVReader.detect(prefix: prefix[start...], file: path) {
            return format
        }
        throw InputError(
            file: path, line: 1,
            "unknown trace format; expected SUMO FCD XML (<fcd-export>) or CSV with the header time,id,x,y[,speed,angle]")
    }

    static func precedes(_ a: Trajectory, _ b: Trajectory) -> Bool {
        if a.start != b.start { return a.start < b.start }
        return a.vehicleID < b.vehicleID
    }
}

let utf8BOM: [UInt8] = [0xEF, 0xBB, 0xBF]

func isWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
}

/// Reads at most `maxBytes` from the start of the file.
func readPrefix(path: String, maxBytes: Int) throws(InputError) -> [UInt8] {
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw InputError(file: path, "cannot open the file for reading (missing or not readable)")
    }
    defer { try? handle.close() }
    do {
        return [UInt8](try handle.read(upToCount: maxBytes) ?? Data())
    } catch {
        throw InputError(file: path, "cannot read the file: \(error.localizedDescription)")
    }
}

/// Reads the whole file with one read.
func readWholeFile(path: String) throws(InputError) -> Data {
    do {
        return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
    } catch {
        throw InputError(file: path, "cannot read the file: \(error.localizedDescription)")
    }
}

/// Parses a number field of a trace: a finite decimal (surrounding spaces allowed).
func parseNumber(_ text: String) -> Double? {
    // Fast path first: most fields have no surrounding spaces.
    guard let value = Double(text) ?? Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
        return nil
    }
    return value
}

/// Collects samples per vehicle while a reader streams through a file, then builds the trajectories.
struct TraceAssembler {
    /// Why a sample was refused.
    enum Conflict {
        /// The vehicle already has a sample at this time.
        case sameTime
        /// The vehicle's previous sample is later; its time is given.
        case earlier(previous: Double)
    }

    let file: String
    private var indexByID: [String: Int] = [:]
    private var ids: [String] = []
    private var samples: [[TraceSample]] = []

    init(file: String) { self.file = file }

    /// Appends a sample to the vehicle's trajectory unless it is not strictly after the vehicle's
    /// previous sample; then nothing is appended and the conflict is returned.
    mutating func append(_ sample: TraceSample, vehicleID: String) -> Conflict? {
        if let index = indexByID[vehicleID] {
            let previous = samples[index][samples[index].count - 1].time
            if sample.time == previous { return .sameTime }
            if sample.time < previous { return .earlier(previous: previous) }
            samples[index].append(sample)
        } else {
            indexByID[vehicleID] = ids.count
            ids.append(vehicleID)
            samples.append([sample])
        }
        return nil
    }

    /// The trajectories, sorted by start, then vehicle id.
    func trajectories() -> [Trajectory] {
        zip(ids, samples)
            .map { Trajectory(unchecked: $0.0, samples: $0.1) }
            .sorted(by: Trace.precedes)
    }
}
