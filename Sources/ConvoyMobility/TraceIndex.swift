import ConvoyCore
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A converted trace in one file: every vehicle's trajectory, each a `TrajectoryFile` block, plus an
/// index by vehicle id, so a reader can open the index and read one vehicle's block with one `pread`.
/// Written by `convoy trace import` and by `TraceCache`.
///
/// Layout, all little-endian:
///
///     offset  size  content
///     0       8     magic "CVYTRIDX"
///     8       4     UInt32 format version (1)
///     12      4     UInt32 m = byte length of the metadata (JSON)
///     16      8     UInt64 offset of the index table
///     24      8     UInt64 v = number of vehicles
///     32      m     metadata: {"source_format", "coordinate_frame", "gzip", "options"}
///     …             v blocks, each exactly a `TrajectoryFile` encoding (see there)
///     table         v entries, in trace order (start, then id): UInt64 block offset, UInt64 block
///                   length, Float64 start, Float64 end, UInt32 n, n bytes vehicle id (UTF-8)
///
/// A block can be copied out as-is to make a per-vehicle trajectory file (`trajectoryBytes(for:)`).
public struct TraceIndex: Sendable {
    static let magic: [UInt8] = Array("CVYTRIDX".utf8)
    public static let version: UInt32 = 1

    public struct Entry: Sendable, Equatable {
        public var vehicleID: String
        public var start: Double
        public var end: Double
        var offset: UInt64
        var length: UInt64
    }

    struct Metadata: Codable, Equatable {
        var sourceFormat: String
        var coordinateFrame: CoordinateFrameRecord
        var gzip: Bool
        /// `TraceCache`'s key for the options the trace was loaded with.
        var options: String

        enum CodingKeys: String, CodingKey {
            case sourceFormat = "source_format", coordinateFrame = "coordinate_frame", gzip, options
        }
    }

    public let path: String
    /// Vehicles in trace order (by start, then id).
    public let entries: [Entry]
    private let byID: [String: Int]
    let metadata: Metadata

    /// The format of the trace the index was made from.
    public var sourceFormat: TraceFormat { TraceFormat(rawValue: metadata.sourceFormat) ?? .convoyIndex }
    public var coordinateFrame: CoordinateFrame { metadata.coordinateFrame.frame }

    /// Whether `path` starts with the index magic (false for unreadable or short files).
    static func isIndex(path: String) throws(InputError) -> Bool {
        let head = try readPrefix(path: path, maxBytes: 8, expected: "a trace file")
        return head == magic
    }

    /// Writes `trace` as an index file at `path`, atomically (a temporary file, then a rename).
    /// `options` is recorded for `TraceCache`. Errors are `InputError`s naming `path` with the
    /// system's reason (e.g. "No space left on device").
    public static func write(_ trace: Trace, to path: String, optionsKey: String = "") throws(InputError) {
        let metadata = Metadata(
            sourceFormat: trace.format.rawValue, coordinateFrame: CoordinateFrameRecord(trace.coordinateFrame), gzip: trace.gzip,
            options: optionsKey)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json: [UInt8]
        do {
            json = [UInt8](try encoder.encode(metadata))
        } catch {
            throw InputError(file: path, "cannot write the index file: the coordinate frame \(trace.coordinateFrame) cannot be recorded")
        }
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = Glibc.open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw InputError(file: path, "cannot create the index file (\(temporary)): \(errnoText())")
        }
        var closed = false, moved = false
        defer {
            if !closed { _ = Glibc.close(descriptor) }
            if !moved { _ = unlink(temporary) }
        }
        func write(_ bytes: [UInt8], at offset: UInt64) throws(InputError) {
            var done = 0
            while done < bytes.count {
                let wrote = bytes.withUnsafeBytes { raw in
                    pwrite(descriptor, raw.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
                }
                if wrote < 0, errno == EINTR { continue }
                guard wrote > 0 else { throw InputError(file: path, "cannot write the index file: \(errnoText())") }
                done += wrote
            }
        }
        var offset = UInt64(32 + json.count)
        var table: [UInt8] = []
        var pending: [UInt8] = []
        for trajectory in trace.trajectories {
            let block = TrajectoryFile.encode(trajectory)
            let id = Array(trajectory.vehicleID.utf8)
            append(offset, to: &table)
            append(UInt64(block.count), to: &table)
            append(trajectory.start.bitPattern, to: &table)
            append(trajectory.end.bitPattern, to: &table)
            append(UInt32(id.count), to: &table)
            table += id
            offset += UInt64(block.count)
            pending.append(contentsOf: block)
            if pending.count > 4 << 20 {
                try write(pending, at: offset - UInt64(pending.count))
                pending.removeAll(keepingCapacity: true)
            }
        }
        var header: [UInt8] = magic
        append(version, to: &header)
        append(UInt32(json.count), to: &header)
        append(offset, to: &header)
        append(UInt64(trace.trajectories.count), to: &header)
        header += json
        try write(pending, at: offset - UInt64(pending.count))
        try write(table, at: offset)
        try write(header, at: 0)
        guard fsync(descriptor) == 0 else { throw InputError(file: path, "cannot write the index file: \(errnoText())") }
        closed = true
        guard Glibc.close(descriptor) == 0 else { throw InputError(file: path, "cannot write the index file: \(errnoText())") }
        guard rename(temporary, path) == 0 else {
            throw InputError(file: path, "cannot write the index file: \(errnoText())")
        }
        moved = true
    }

    /// Opens an index: reads its header and table only (not the trajectories).
    /// Throws an `InputError` naming the file when it is not an index, of another version, or corrupt.
    public static func open(path: String) throws(InputError) -> TraceIndex {
        let file = try IndexFile(path: path)
        let header = try file.read(at: 0, count: 32)
        guard header.prefix(8).elementsEqual(magic) else {
            throw InputError(file: path, "not a Convoy trace index (bad magic); expected one written by convoy trace import")
        }
        let version = header.load(UInt32.self, at: 8)
        guard version == Self.version else {
            throw InputError(file: path, "unsupported trace index version \(version); expected \(Self.version)")
        }
        let metadataLength = Int(header.load(UInt32.self, at: 12))
        let tableOffset = header.load(UInt64.self, at: 16)
        let count = header.load(UInt64.self, at: 24)
        let size = file.size
        guard tableOffset <= size, UInt64(32 + metadataLength) <= tableOffset, count < size else {
            throw InputError(file: path, "corrupt trace index: header points outside the file (\(size) bytes)")
        }
        let metadata: Metadata
        do {
            metadata = try JSONDecoder().decode(Metadata.self, from: Data(try file.read(at: 32, count: metadataLength)))
        } catch let error as InputError {
            throw error
        } catch {
            throw InputError(file: path, "corrupt trace index: unreadable metadata (\(error))")
        }
        let table = try file.read(at: tableOffset, count: Int(size - tableOffset))
        var entries: [Entry] = []
        entries.reserveCapacity(Int(count))
        var byID: [String: Int] = [:]
        var at = 0
        for _ in 0..<count {
            guard at + 36 <= table.count else { throw InputError(file: path, "truncated trace index: the vehicle table is cut short") }
            let idLength = Int(table.load(UInt32.self, at: at + 32))
            guard at + 36 + idLength <= table.count else {
                throw InputError(file: path, "truncated trace index: the vehicle table is cut short")
            }
            let entry = Entry(
                vehicleID: String(decoding: table[(at + 36)..<(at + 36 + idLength)], as: UTF8.self),
                start: Double(bitPattern: table.load(UInt64.self, at: at + 16)),
                end: Double(bitPattern: table.load(UInt64.self, at: at + 24)),
                offset: table.load(UInt64.self, at: at), length: table.load(UInt64.self, at: at + 8))
            let (blockEnd, overflow) = entry.offset.addingReportingOverflow(entry.length)
            guard entry.offset >= UInt64(32 + metadataLength), !overflow, blockEnd <= tableOffset else {
                throw InputError(file: path, "corrupt trace index: vehicle \"\(excerpt(entry.vehicleID))\" points outside the data")
            }
            // A vehicle without samples spans +infinity … -infinity; any other within TraceLimits.
            let noSamples = entry.start == .infinity && entry.end == -.infinity
            guard noSamples || (timeProblem(entry.start) == nil && timeProblem(entry.end) == nil && entry.start <= entry.end) else {
                throw InputError(
                    file: path, field: "time",
                    "corrupt trace index: vehicle \"\(excerpt(entry.vehicleID))\" spans \(describeNumber(entry.start)) … "
                        + "\(describeNumber(entry.end)) s; expected |time| ≤ 1e9 s")
            }
            byID[entry.vehicleID] = entries.count
            entries.append(entry)
            at += 36 + idLength
        }
        return TraceIndex(path: path, entries: entries, byID: byID, metadata: metadata)
    }

    /// The bytes of one vehicle's trajectory, a complete `TrajectoryFile` encoding; nil for a vehicle
    /// the trace does not have.
    public func trajectoryBytes(for vehicleID: String) throws(InputError) -> Data? {
        guard let index = byID[vehicleID] else { return nil }
        let entry = entries[index]
        return Data(try IndexFile(path: path).read(at: entry.offset, count: Int(entry.length)))
    }

    /// One vehicle's trajectory (one read of its block); nil for a vehicle the trace does not have.
    public func trajectory(for vehicleID: String) throws(InputError) -> Trajectory? {
        guard let bytes = try trajectoryBytes(for: vehicleID) else { return nil }
        return try TrajectoryFile.decode(bytes, file: path)
    }

    /// The whole trace.
    public func loadTrace() throws(InputError) -> Trace {
        let file = try IndexFile(path: path)
        var trajectories: [Trajectory] = []
        trajectories.reserveCapacity(entries.count)
        for entry in entries {
            let bytes = try file.read(at: entry.offset, count: Int(entry.length))
            trajectories.append(try TrajectoryFile.decode(Data(bytes), file: path))
        }
        return Trace(trajectories: trajectories, format: sourceFormat, coordinateFrame: coordinateFrame, gzip: metadata.gzip)
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }
}

/// Positional reads from a regular file (a directory, FIFO or device is refused at open).
private final class IndexFile {
    let path: String
    let descriptor: Int32
    let size: UInt64

    init(path: String) throws(InputError) {
        self.path = path
        let file = try openRegularFile(path: path, expected: "a trace file")
        descriptor = file.descriptor
        size = UInt64(max(0, file.size))
    }

    deinit { _ = Glibc.close(descriptor) }

    func read(at offset: UInt64, count: Int) throws(InputError) -> [UInt8] {
        guard offset + UInt64(count) <= size else {
            throw InputError(file: path, "truncated trace index: \(size) bytes, expected at least \(offset + UInt64(count))")
        }
        let bytes = try readBytes(descriptor: descriptor, at: Int(offset), count: count, path: path)
        guard bytes.count == count else {
            throw InputError(file: path, "truncated trace index: the file ends at byte \(Int(offset) + bytes.count), expected \(offset + UInt64(count))")
        }
        return bytes
    }
}

extension Array where Element == UInt8 {
    fileprivate func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}

/// `CoordinateFrame` as stored in an index's metadata.
struct CoordinateFrameRecord: Codable, Equatable {
    var kind: String
    var offsetX: Double?, offsetY: Double?
    var projection: String?
    var originLon: Double?, originLat: Double?
    var zone: Int?, south: Bool?
    var guessed: Bool?

    init(_ frame: CoordinateFrame) {
        switch frame {
        case .metric: kind = "metric"
        case .utm(let dx, let dy): kind = "utm"; offsetX = dx; offsetY = dy
        case .geographic(let projection, let guessed):
            kind = "geographic"
            self.guessed = guessed
            switch projection {
            case .localEquirectangular(let lon, let lat): self.projection = "local-equirectangular"; originLon = lon; originLat = lat
            case .utm(let zone, let south, let dx, let dy):
                self.projection = "utm"; self.zone = zone; self.south = south; offsetX = dx; offsetY = dy
            }
        }
    }

    var frame: CoordinateFrame {
        switch kind {
        case "utm": return .utm(offsetX: offsetX ?? 0, offsetY: offsetY ?? 0)
        case "geographic":
            let projection: GeoProjection = self.projection == "utm"
                ? .utm(zone: zone ?? 0, south: south ?? false, offsetX: offsetX ?? 0, offsetY: offsetY ?? 0)
                : .localEquirectangular(originLon: originLon ?? 0, originLat: originLat ?? 0)
            return .geographic(projection: projection, guessed: guessed ?? false)
        default: return .metric
        }
    }
}

/// Transparent caching of converted traces next to the originals: `TRACE.convoy-index`.
public enum TraceCache {
    /// Where the index of `tracePath` lives: `TRACE.convoy-index` next to it.
    public static func indexPath(for tracePath: String) -> String { tracePath + ".convoy-index" }

    /// The trace at `path`, read through its index when that is fresh — newer than the trace and made
    /// with the same options — and otherwise parsed and indexed for next time. Writing the index is
    /// best effort (a read-only directory only costs the speed-up). A `path` that is itself an index
    /// is read directly.
    public static func load(path: String, options: TraceLoadOptions = TraceLoadOptions()) throws(InputError) -> Trace {
        if let index = freshIndex(for: path, options: options) {
            if let trace = try? index.loadTrace() { return trace }
        }
        let trace = try Trace.load(path: path, options: options)
        if trace.format != .convoyIndex, !(try TraceIndex.isIndex(path: path)) {
            try? TraceIndex.write(trace, to: indexPath(for: path), optionsKey: optionsKey(options))
        }
        return trace
    }

    /// The index of the trace at `path`, building it first when missing or stale. For launchers that
    /// hand each vehicle only its own trajectory (`TraceIndex.trajectoryBytes(for:)`).
    public static func index(path: String, options: TraceLoadOptions = TraceLoadOptions()) throws(InputError) -> TraceIndex {
        if try TraceIndex.isIndex(path: path) { return try TraceIndex.open(path: path) }
        if let index = freshIndex(for: path, options: options) { return index }
        let trace = try Trace.load(path: path, options: options)
        let target = indexPath(for: path)
        try TraceIndex.write(trace, to: target, optionsKey: optionsKey(options))
        return try TraceIndex.open(path: target)
    }

    /// The cached index when it exists, is at least as new as the trace and matches the options.
    static func freshIndex(for path: String, options: TraceLoadOptions) -> TraceIndex? {
        let target = indexPath(for: path)
        let files = FileManager.default
        guard let traceDate = (try? files.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
            let indexDate = (try? files.attributesOfItem(atPath: target))?[.modificationDate] as? Date,
            indexDate >= traceDate,
            let index = try? TraceIndex.open(path: target),
            index.metadata.options == optionsKey(options)
        else { return nil }
        return index
    }

    /// The options as recorded in an index (an index is reused only for the same options).
    public static func optionsKey(_ options: TraceLoadOptions) -> String {
        "coordinates=\(options.coordinates.rawValue);projection=\(options.projection.map { "\($0)" } ?? "default")"
    }
}
