import ConvoyCore
import Foundation

/// The trace file formats Convoy reads. Any of them may be gzip-compressed (detected from the
/// content, not the name).
public enum TraceFormat: String, Sendable, CaseIterable, Codable {
    /// SUMO floating car data, XML flavour (`sumo --fcd-output`), in x/y metres, lon/lat
    /// (`--fcd-output.geo`) or UTM (`--fcd-output.utm`).
    case sumoFCDXML = "sumo-fcd-xml"
    /// SUMO floating car data as CSV (`--fcd-output file.csv`, SUMO ≥ 1.24): `;`-separated, columns
    /// `timestep_time;vehicle_id;vehicle_x;vehicle_y;…`.
    case sumoFCDCSV = "sumo-fcd-csv"
    /// Comma-separated with a header naming at least `time,id,x,y` (or `lon,lat`); `speed` and `angle`
    /// are read when present, other columns are ignored.
    case plainCSV = "csv"
    /// ns-2 mobility (`$node_(i) set X_ …`, `$ns_ at t "$node_(i) setdest x y speed"`), as SUMO's
    /// traceExporter writes it.
    case ns2 = "ns2-mobility"
    /// Convoy's own indexed trace file (`convoy trace import`).
    case convoyIndex = "convoy-index"
}

/// How the numbers of a trace are to be read.
public enum CoordinateInterpretation: String, Sendable, Equatable, CaseIterable {
    /// From the file: lon/lat attributes or columns, SUMO's configuration comment, and, when the file
    /// says nothing, the values: a trace whose x lie in [-180, 180] and y in [-90, 90] and which
    /// spans less than 1 unit on both axes while moving is taken as lon/lat (no road traffic fits in
    /// a square metre).
    case auto
    /// x/y metres, whatever the file says.
    case metric
    /// x = longitude, y = latitude in degrees, whatever the file says.
    case geographic
}

/// The frame a trace's positions are in, after loading.
public enum CoordinateFrame: Sendable, Equatable, CustomStringConvertible {
    /// x/y metres as written in the file.
    case metric
    /// UTM metres as written (SUMO `--fcd-output.utm`), shifted by an offset (0, 0 unless a UTM
    /// projection with a net offset was given).
    case utm(offsetX: Double, offsetY: Double)
    /// Longitude/latitude projected with `projection`; `guessed` when the file did not say it was
    /// geographic and the values did.
    case geographic(projection: GeoProjection, guessed: Bool)

    public var description: String {
        switch self {
        case .metric: return "x/y metres"
        case .utm(let dx, let dy):
            return dx == 0 && dy == 0 ? "UTM metres" : "UTM metres + offset (\(format2(dx)), \(format2(dy)))"
        case .geographic(let projection, let guessed):
            return "lon/lat\(guessed ? " (guessed from the values)" : "") projected: \(projection)"
        }
    }
}

/// Options for `Trace.load(path:options:)`.
public struct TraceLoadOptions: Sendable, Equatable {
    /// How geographic coordinates are projected; nil: `GeoProjection.defaultProjection` around the
    /// trace's first sample (in file order). A `.utm` projection also shifts UTM traces by its offset
    /// (SUMO's netOffset).
    public var projection: GeoProjection?
    public var coordinates: CoordinateInterpretation

    public init(projection: GeoProjection? = nil, coordinates: CoordinateInterpretation = .auto) {
        self.projection = projection
        self.coordinates = coordinates
    }
}

/// A whole mobility trace: every vehicle's trajectory.
public struct Trace: Sendable, Equatable {
    /// One trajectory per vehicle, sorted by `start`, then `vehicleID`.
    public var trajectories: [Trajectory]
    /// The format the trace was read from.
    public var format: TraceFormat
    /// The frame of the positions.
    public var coordinateFrame: CoordinateFrame
    /// Whether the file was gzip-compressed.
    public var gzip: Bool

    /// A trace from trajectories in any order; they are sorted by `start`, then `vehicleID`.
    public init(trajectories: [Trajectory], format: TraceFormat, coordinateFrame: CoordinateFrame = .metric, gzip: Bool = false) {
        self.trajectories = trajectories.sorted(by: Self.precedes)
        self.format = format
        self.coordinateFrame = coordinateFrame
        self.gzip = gzip
    }

    /// The trajectory of the vehicle `vehicleID`, if the trace has one.
    public func trajectory(for vehicleID: String) -> Trajectory? {
        trajectories.first { $0.vehicleID == vehicleID }
    }

    /// `load(path:options:)` with a projection for geographic coordinates.
    public static func load(path: String, projection: GeoProjection?) throws(InputError) -> Trace {
        try load(path: path, options: TraceLoadOptions(projection: projection))
    }

    /// Reads a trace file, detecting its format from its content (not its name), gzip or not:
    /// XML whose root element is `<fcd-export>` is SUMO FCD; a CSV header with time, id and x/y
    /// (or lon/lat) columns is SUMO FCD CSV (`;`) or plain CSV (`,`); `$node_(…)`/`$ns_ at` lines are
    /// ns-2 mobility; a file starting with `CVYTRIDX` is a Convoy trace index.
    ///
    /// Streaming: the file is read in 1 MiB chunks, never whole; memory is proportional to the
    /// samples kept (about 50 bytes each).
    ///
    /// All or nothing: either the whole trace is returned or an `InputError` names the file, the line
    /// (1-based), the field and what was expected. Errors: unreadable or empty file, unknown format,
    /// truncated or corrupt gzip, malformed or truncated XML, a missing attribute or column, a
    /// non-numeric or non-finite number, time going backwards, a vehicle twice at the same time,
    /// degrees out of range, a value beyond `TraceLimits` (|time| ≤ 1e9 s, |x|, |y| ≤ 1e9 m, lines
    /// of at most 1 MiB), a path that is not a regular file (directory, FIFO, device), and a trace
    /// without any vehicle.
    public static func load(path: String, options: TraceLoadOptions = TraceLoadOptions()) throws(InputError) -> Trace {
        if try TraceIndex.isIndex(path: path) {
            return try TraceIndex.open(path: path).loadTrace()
        }
        var buffer = try StreamBuffer(path: path)
        defer { buffer.close() }
        let format = try detectFormat(&buffer)
        var assembler = TraceAssembler(file: path, coordinates: options.coordinates)
        switch format {
        case .sumoFCDXML: try FCDXMLReader.read(buffer, into: &assembler)
        case .sumoFCDCSV, .plainCSV: try CSVTraceReader.read(&buffer, into: &assembler)
        case .ns2: try NS2Reader.read(&buffer, into: &assembler)
        case .convoyIndex: preconditionFailure("handled above")
        }
        let (trajectories, frame) = try assembler.finish(options: options)
        if trajectories.isEmpty {
            throw InputError(file: path, "the trace has no vehicle samples; expected at least one vehicle")
        }
        return Trace(trajectories: trajectories, format: assembler.format ?? format, coordinateFrame: frame, gzip: buffer.isGzip)
    }

    /// Decides the format from the file's first bytes (after decompression).
    static func detectFormat(_ buffer: inout StreamBuffer) throws(InputError) -> TraceFormat {
        let path = buffer.file
        let prefix = try buffer.peek(maxBytes: 64 * 1024)
        var start = prefix.startIndex
        if prefix.starts(with: utf8BOM) { start += 3 }
        while start < prefix.endIndex, isWhitespace(prefix[start]) { start += 1 }
        guard start < prefix.endIndex else {
            throw InputError(file: path, "empty file; expected a trace (SUMO FCD XML or CSV, ns-2 mobility, CSV time,id,x,y)")
        }
        if prefix[start] == UInt8(ascii: "<") {
            // The XML reader checks that the root element is <fcd-export>.
            return .sumoFCDXML
        }
        if NS2Reader.detect(prefix: prefix[start...]) { return .ns2 }
        if let format = CSVTraceReader.detect(prefix: prefix[start...]) { return format }
        throw InputError(
            file: path, line: 1,
            "unknown trace format; expected SUMO FCD XML (<fcd-export>) or CSV (time;id;x;y columns), ns-2 mobility "
                + "($node_(i) set X_ …), or CSV with the header time,id,x,y[,speed,angle]")
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

/// Parses a number field of a trace: a finite decimal (surrounding spaces allowed).
func parseNumber(_ text: String) -> Double? {
    // Fast path first: most fields have no surrounding spaces.
    guard let value = Double(text) ?? Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
        return nil
    }
    return value
}

/// What a file says about its coordinates.
enum DeclaredCoordinates {
    /// Nothing (x/y columns or attributes without a statement): decided from the values.
    case unstated
    /// x/y metres (e.g. SUMO's configuration comment without geo or UTM output).
    case metric
    /// Longitude and latitude in degrees.
    case geographic
    /// UTM metres (SUMO `--fcd-output.utm`).
    case utm
}

/// Collects samples per vehicle while a reader streams through a file, then builds the trajectories.
/// Positions are kept as read (possibly degrees) and put into the metric frame by `finish`.
struct TraceAssembler {
    /// Why a sample was refused.
    enum Conflict {
        /// The vehicle already has a sample at this time.
        case sameTime
        /// The vehicle's previous sample is later; its time is given.
        case earlier(previous: Double)
    }

    let file: String
    /// What the file says about its coordinates (set by the reader before its first sample).
    var declared = DeclaredCoordinates.unstated
    /// How the caller wants the coordinates read (`TraceLoadOptions.coordinates`).
    let coordinates: CoordinateInterpretation
    /// A more precise format than the one detected (e.g. SUMO FCD CSV rather than plain CSV).
    var format: TraceFormat?
    private var indexByID: [String: Int] = [:]
    private var ids: [String] = []
    private var samples: [[TraceSample]] = []
    /// The first sample's raw position in file order (origin of the default projection).
    private var first: Position?
    private var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity

    init(file: String, coordinates: CoordinateInterpretation = .auto) {
        self.file = file
        self.coordinates = coordinates
    }

    /// Whether samples are read as degrees, so that longitude and latitude ranges are checked as they
    /// come: the caller said so, or the file did and the caller left it to the file. (A trace only
    /// guessed to be geographic at the end has its values in range by construction.)
    var readsDegrees: Bool {
        switch coordinates {
        case .geographic: return true
        case .metric: return false
        case .auto: return declared == .geographic
        }
    }

    /// Throws the `InputError` for the first value of `sample` outside `TraceLimits` (see
    /// `sampleProblem`), naming `line` and the field as the reader calls it.
    func check(_ sample: TraceSample, line: Int?, names: SampleFieldNames) throws(InputError) {
        if let (field, message) = sampleProblem(sample, geographic: readsDegrees) {
            throw InputError(file: file, line: line, field: names.name(field), message)
        }
    }

    /// The index of `vehicleID`, registering it when new.
    mutating func vehicleIndex(_ vehicleID: String) -> Int {
        if let index = indexByID[vehicleID] { return index }
        indexByID[vehicleID] = ids.count
        ids.append(vehicleID)
        samples.append([])
        return ids.count - 1
    }

    /// Appends a sample to the vehicle's trajectory unless it is not strictly after the vehicle's
    /// previous sample; then nothing is appended and the conflict is returned. A sample outside
    /// `TraceLimits` is an `InputError` naming `line` and the field (`names`).
    mutating func append(_ sample: TraceSample, vehicleID: String, line: Int?, names: SampleFieldNames) throws(InputError)
        -> Conflict?
    {
        try append(sample, vehicle: vehicleIndex(vehicleID), line: line, names: names)
    }

    /// `append(_:vehicleID:line:names:)` by index from `vehicleIndex(_:)`.
    mutating func append(_ sample: TraceSample, vehicle index: Int, line: Int?, names: SampleFieldNames) throws(InputError)
        -> Conflict?
    {
        try check(sample, line: line, names: names)
        if let previous = samples[index].last?.time {
            if sample.time == previous { return .sameTime }
            if sample.time < previous { return .earlier(previous: previous) }
        }
        samples[index].append(sample)
        if first == nil { first = sample.position }
        let p = sample.position
        if p.x < minX { minX = p.x }
        if p.x > maxX { maxX = p.x }
        if p.y < minY { minY = p.y }
        if p.y > maxY { maxY = p.y }
        return nil
    }

    /// The last sample of a vehicle, if any.
    func lastSample(vehicle index: Int) -> TraceSample? { samples[index].last }

    /// Whether the raw values look like degrees (see `CoordinateInterpretation.auto`).
    var looksGeographic: Bool {
        guard first != nil, minX >= -180, maxX <= 180, minY >= -90, maxY <= 90 else { return false }
        let width = maxX - minX, height = maxY - minY
        return width < 1 && height < 1 && (width > 0 || height > 0)
    }

    /// The trajectories in the metric frame, sorted by start, then vehicle id, and that frame.
    mutating func finish(options: TraceLoadOptions) throws(InputError) -> ([Trajectory], CoordinateFrame) {
        var kind = declared
        var guessed = false
        switch options.coordinates {
        case .metric: kind = .metric
        case .geographic: kind = .geographic
        case .auto:
            if kind == .unstated {
                guessed = looksGeographic
                kind = guessed ? .geographic : .metric
            }
        }
        let frame: CoordinateFrame
        switch kind {
        case .unstated, .metric:
            frame = .metric
        case .utm:
            let offset = options.projection?.utmOffset ?? (0, 0)
            frame = .utm(offsetX: offset.x, offsetY: offset.y)
            if offset != (0, 0) {
                try checkTransformed(what: "UTM position", frame: frame) { Position(x: $0.x + offset.x, y: $0.y + offset.y) }
                transform { Position(x: $0.x + offset.x, y: $0.y + offset.y) }
            }
        case .geographic:
            // Every sample's degrees were checked as it was read (`readsDegrees`) or, when guessed,
            // are in range by construction.
            let origin = first ?? Position(x: 0, y: 0)
            let projection = options.projection ?? GeoProjection.defaultProjection(originLon: origin.x, originLat: origin.y)
            frame = .geographic(projection: projection, guessed: guessed)
            try checkTransformed(what: "lon/lat", frame: frame) { projection.project(lon: $0.x, lat: $0.y) }
            transform { projection.project(lon: $0.x, lat: $0.y) }
        }
        let trajectories = zip(ids, samples)
            .filter { !$0.1.isEmpty }
            .map { Trajectory(unchecked: $0.0, samples: $0.1) }
            .sorted(by: Trace.precedes)
        return (trajectories, frame)
    }

    /// Checks that `f` puts every sample within ±`TraceLimits.maxCoordinate` metres (a projection far
    /// outside its zone, or a huge network offset, may not). There is no line number any more: the
    /// error names the vehicle and the time instead.
    private func checkTransformed(what: String, frame: CoordinateFrame, _ f: (Position) -> Position) throws(InputError) {
        for v in samples.indices {
            for sample in samples[v] {
                let p = f(sample.position)
                for (axis, value) in [(SampleField.x, p.x), (.y, p.y)]
                where coordinateProblem(value, axis: axis, geographic: false) != nil {
                    let name = axis == .x ? "x" : "y"
                    throw InputError(
                        file: file, field: name,
                        "vehicle \"\(excerpt(ids[v]))\" at time \(describeNumber(sample.time)) s: \(what) "
                            + "(\(describeNumber(sample.position.x)), \(describeNumber(sample.position.y))) becomes "
                            + "\(name) = \(describeNumber(value)) m in the frame \(frame); expected |\(name)| ≤ 1e9 m "
                            + "(is the projection or offset right for this trace?)")
                }
            }
        }
    }

    private mutating func transform(_ f: (Position) -> Position) {
        for v in samples.indices {
            for s in samples[v].indices { samples[v][s].position = f(samples[v][s].position) }
        }
    }
}
