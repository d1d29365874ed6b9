import ConvoyCore
@testable import ConvoyMobility
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let xmlHead = "<?xml version=\"1.0\"?>\n<fcd-export>\n"
private let ns2Head = "$node_(0) set X_ 0\n$node_(0) set Y_ 0\n"
private let outOfTime = "outside the supported range; expected |time| ≤ 1e9 s"
private let outOfSpace = "outside the supported range; expected |"

/// Times and coordinates beyond `TraceLimits`, in every format: each is refused on its line.
let outOfBoundsTraces: [BadInput] = [
    // Times (a span beyond ~9.2e12 s used to trap in `convoy trace info`).
    BadInput(name: "CSV time 1e13", fileName: "t.csv", content: "time,id,x,y\n0,a,0,0\n1e13,a,1,1\n", line: 3, field: "time", message: outOfTime),
    BadInput(name: "CSV time -1e10", fileName: "t.csv", content: "time,id,x,y\n-1e10,a,0,0\n0,a,1,1\n", line: 2, field: "time", message: outOfTime),
    BadInput(name: "SUMO CSV time", fileName: "t.csv", content: "timestep_time;vehicle_id;vehicle_x;vehicle_y\n0;a;0;0\n1e13;a;1;1\n", line: 3, field: "time", message: outOfTime),
    BadInput(name: "XML timestep time", fileName: "t.xml", content: xmlHead + "<timestep time=\"0\"><vehicle id=\"a\" x=\"0\" y=\"0\"/></timestep>\n<timestep time=\"1e13\"/>\n</fcd-export>\n", line: 4, field: "time", message: outOfTime),
    BadInput(name: "ns-2 command time", fileName: "t.tcl", content: ns2Head + "$ns_ at 1e13 \"$node_(0) setdest 1 1 1\"\n", line: 3, field: "time", message: outOfTime),
    // A tiny speed puts the arrival beyond any time (it used to trap in `convoy trace info`).
    BadInput(name: "ns-2 tiny speed", fileName: "t.tcl", content: ns2Head + "$ns_ at 1.0 \"$node_(0) setdest 100 0 1e-300\"\n", line: 3, field: "speed", message: "expected a larger speed"),
    BadInput(name: "ns-2 small speed", fileName: "t.tcl", content: ns2Head + "$ns_ at 1.0 \"$node_(0) setdest 100 0 1e-8\"\n# done\n", line: 3, field: "speed", message: "beyond the supported |time| ≤ 1e9 s"),

    // Coordinates (1e308 used to trap in the V2V topic cell).
    BadInput(name: "CSV x 1e308", fileName: "c.csv", content: "time,id,x,y\n0,a,1e308,0\n1,a,1e308,1\n", line: 2, field: "x", message: outOfSpace),
    BadInput(name: "CSV y -1e10", fileName: "c.csv", content: "time,id,x,y\n0,a,0,0\n1,a,0,-1e10\n", line: 3, field: "y", message: outOfSpace),
    BadInput(name: "SUMO CSV x", fileName: "c.csv", content: "timestep_time;vehicle_id;vehicle_x;vehicle_y\n0;a;1e308;0\n", line: 2, field: "x", message: outOfSpace),
    BadInput(name: "XML y", fileName: "c.xml", content: xmlHead + "<timestep time=\"0\"><vehicle id=\"a\" x=\"0\" y=\"1e308\"/></timestep>\n</fcd-export>\n", line: 3, field: "y", message: outOfSpace),
    BadInput(name: "ns-2 initial X_", fileName: "c.tcl", content: "$node_(0) set X_ 1e308\n$node_(0) set Y_ 0\n", line: 1, field: "X_", message: outOfSpace),
    BadInput(name: "ns-2 destination x", fileName: "c.tcl", content: ns2Head + "$ns_ at 1.0 \"$node_(0) setdest 1e308 0 10\"\n", line: 3, field: "x", message: outOfSpace),

    // Degrees: every one on its line (latitude 95 used to be reported without one).
    BadInput(name: "CSV latitude 95", fileName: "g.csv", content: "time,id,lat,lon\n0,a,44.5,11.3\n1,a,95,11.3\n", line: 3, field: "lat", message: "latitude out of range [-90, 90]: found 95"),
    BadInput(name: "CSV longitude 200", fileName: "g.csv", content: "time,id,lon,lat\n0,a,200,44.5\n", line: 2, field: "lon", message: "longitude out of range [-180, 180]: found 200"),
    BadInput(name: "XML lat attribute", fileName: "g.xml", content: xmlHead + "<timestep time=\"0\">\n<vehicle id=\"a\" lon=\"11.3\" lat=\"-95\"/>\n</timestep>\n</fcd-export>\n", line: 4, field: "lat", message: "latitude out of range"),
    BadInput(name: "XML geo x/y announced by SUMO's configuration", fileName: "g.xml", content: "<!-- <configuration><output><fcd-output.geo value=\"true\"/></output></configuration> -->\n<fcd-export>\n<timestep time=\"0\"><vehicle id=\"a\" x=\"11.3\" y=\"95\"/></timestep>\n</fcd-export>\n", line: 3, field: "y", message: "latitude out of range"),
    BadInput(name: "CSV x/y read as geo by option", fileName: "g.csv", content: "time,id,x,y\n0,a,11.3,44.5\n1,a,181,44.5\n", line: 3, field: "x", message: "longitude out of range", options: TraceLoadOptions(coordinates: .geographic)),
]

/// An entry point that opens a trace-like file.
struct EntryPoint: Sendable, CustomTestStringConvertible {
    var name: String
    /// What the directory error says was expected.
    var expected: String
    var call: @Sendable (String) throws -> Void

    var testDescription: String { name }
}

let entryPoints: [EntryPoint] = [
    EntryPoint(name: "Trace.load (convoy trace info)", expected: "a trace file") { _ = try Trace.load(path: $0) },
    EntryPoint(name: "TraceCache.index (convoy launch)", expected: "a trace file") { _ = try TraceCache.index(path: $0) },
    EntryPoint(name: "TraceCache.load", expected: "a trace file") { _ = try TraceCache.load(path: $0) },
    EntryPoint(name: "TraceIndex.open", expected: "a trace file") { _ = try TraceIndex.open(path: $0) },
    EntryPoint(name: "TrajectoryFile.read (vehicle process)", expected: "a Convoy trajectory file") { _ = try TrajectoryFile.read(path: $0) },
    EntryPoint(name: "GeoProjection.sumoNetwork (--net)", expected: "a SUMO network file") { _ = try GeoProjection.sumoNetwork(path: $0) },
]

/// What an entry point did: the `InputError`'s description, or what went wrong instead.
private func outcome(_ entry: EntryPoint, _ path: String) -> String {
    do {
        try entry.call(path)
        return "no error"
    } catch let error as InputError {
        return error.description
    } catch {
        return "not an InputError: \(error)"
    }
}

/// Runs `body` with a fresh temporary directory, removed afterwards (async flavour).
private func withTemporaryDirectoryPath<T>(_ body: (String) async throws -> T) async throws -> T {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-hostile-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url.path)
}

@Suite struct HostileInputTests {
    // MARK: 1, 2: times and coordinates beyond the bounds, plain and gzip

    @Test(arguments: outOfBoundsTraces, [false, true])
    func outOfBoundsValuesAreRefusedOnTheirLine(_ input: BadInput, gzip: Bool) throws {
        let data = Data(input.content.utf8)
        try withTemporaryFile(input.fileName + (gzip ? ".gz" : ""), gzip ? gzipStored(data) : data) { path in
            let error = try #require(loadError(path, options: input.options))
            #expect(error.file == path)
            #expect(error.line == input.line, "\(error)")
            #expect(error.field == input.field, "\(error)")
            #expect(error.message.contains(input.message), "\(error)")
        }
    }

    @Test func gzipHelperMakesAValidGzip() throws {
        // The helper itself: a stored-deflate copy of the reference sample reads like the original.
        let data = try Data(contentsOf: URL(fileURLWithPath: fixture("fcd_xy.xml")))
        try withTemporaryFile("fcd_xy.xml.gz", gzipStored(data)) { path in
            let trace = try Trace.load(path: path)
            #expect(trace.gzip)
            #expect(trace.trajectories == (try Trace.load(path: fixture("fcd_xy.xml"))).trajectories)
        }
    }

    @Test func valuesAtTheBoundsAreAccepted() throws {
        let content = "time,id,x,y\n-1e9,a,-1e9,1e9\n1e9,a,1e9,-1e9\n"
        let trace = try withTemporaryFile("edge.csv", content) { try Trace.load(path: $0) }
        let info = TraceInfo(trace)
        #expect(info.start == -1e9 && info.end == 1e9)
        #expect(info.samplingInterval == 2e9)
        // Degrees at the poles and the antimeridian.
        let geo = "time,id,lon,lat\n0,a,180,90\n1,a,-180,-90\n"
        #expect(throws: Never.self) { try withTemporaryFile("poles.csv", geo) { try Trace.load(path: $0) } }
    }

    @Test func metricOptionDoesNotCheckDegrees() throws {
        // Latitude 95 read as metres (the user said so) is just a coordinate.
        let trace = try withTemporaryFile("g.csv", "time,id,lon,lat\n0,a,11.3,95\n") {
            try Trace.load(path: $0, options: TraceLoadOptions(coordinates: .metric))
        }
        #expect(trace.trajectories[0].samples[0].position == Position(x: 11.3, y: 95))
    }

    @Test func slowNs2NodeRedirectedBeforeItsArrivalLoads() throws {
        // The far arrival of the first setdest is never reached, so it is no error.
        let content = ns2Head + "$ns_ at 1.0 \"$node_(0) setdest 100 0 1e-300\"\n$ns_ at 5.0 \"$node_(0) setdest 0 10 1\"\n"
        let trace = try withTemporaryFile("slow.tcl", content) { try Trace.load(path: $0) }
        let node = try #require(trace.trajectory(for: "0"))
        #expect(node.samples.map(\.time) == [1, 5, 15])
        _ = TraceInfo(trace)
    }

    @Test func traceInfoOfAHugeSpanDoesNotTrap() {
        // A Trace built in code is not bounded by the readers: the summary must still not convert
        // seconds to an integer (it used to trap beyond ~9.2e12 s).
        let trace = Trace(
            trajectories: [
                Trajectory(vehicleID: "a", samples: [sample(0, 0, 0), sample(1e13, 1, 1)]),
                Trajectory(vehicleID: "b", samples: [sample(0, 0, 0), sample(1e13, 1, 1), sample(2e13, 2, 2)]),
                Trajectory(vehicleID: "c", samples: [sample(0, 0, 0), sample(1e300, 1, 1)]),
            ], format: .plainCSV)
        let info = TraceInfo(trace)
        #expect(info.samplingInterval == 1e13)
        #expect(info.end == 1e300)
        #expect(!info.text.isEmpty)
    }

    @Test func geoProjectionFarOutsideItsZoneIsRefused() throws {
        // Zone 1's central meridian is 177° W: a point 90° from it projects to infinity.
        let options = TraceLoadOptions(projection: .utm(zone: 1, south: false, offsetX: 0, offsetY: 0), coordinates: .geographic)
        let error = try withTemporaryFile("far.csv", "time,id,x,y\n0,a,-87,0\n1,a,-87,0.001\n") { try #require(loadError($0, options: options)) }
        #expect(error.field == "x", "\(error)")
        #expect(error.message.contains("vehicle \"a\" at time 0 s"), "\(error)")
        #expect(error.message.contains("expected |x| ≤ 1e9 m"), "\(error)")
    }

    @Test func utmOffsetBeyondTheBoundIsRefused() throws {
        let content = "<!-- <configuration><fcd-output.utm value=\"true\"/></configuration> -->\n<fcd-export>\n"
            + "<timestep time=\"0\"><vehicle id=\"a\" x=\"500000\" y=\"4000000\"/></timestep>\n</fcd-export>\n"
        let options = TraceLoadOptions(projection: .utm(zone: 32, south: false, offsetX: 2e9, offsetY: 0))
        let error = try withTemporaryFile("utm.xml", content) { try #require(loadError($0, options: options)) }
        #expect(error.field == "x", "\(error)")
        #expect(error.message.contains("vehicle \"a\""), "\(error)")
    }

    @Test func networkOffsetBeyondTheBoundIsRefused() throws {
        let net = "<net>\n<location netOffset=\"1e300,0\" projParameter=\"+proj=utm +zone=32 +ellps=WGS84\"/>\n</net>\n"
        try withTemporaryFile("far.net.xml", net) { path in
            let error = try #require(throws: InputError.self) { try GeoProjection.sumoNetwork(path: path) }
            #expect(error.line == 2 && error.field == "netOffset", "\(error)")
        }
    }

    @Test func trajectoryFileWithValuesBeyondTheBoundsIsRefused() throws {
        let late = Trajectory(vehicleID: "a", samples: [sample(0, 0, 0), sample(1e13, 0, 0)])
        let error = try #require(throws: InputError.self) { try TrajectoryFile.decode(TrajectoryFile.encode(late), file: "a.traj") }
        #expect(error.field == "time" && error.message.contains("sample 2 of vehicle \"a\""), "\(error)")
        let far = Trajectory(vehicleID: "b", samples: [sample(0, 1e308, 0)])
        let error2 = try #require(throws: InputError.self) { try TrajectoryFile.decode(TrajectoryFile.encode(far), file: "b.traj") }
        #expect(error2.field == "x", "\(error2)")
    }

    @Test func indexWithTimesBeyondTheBoundIsRefused() throws {
        let trace = Trace(trajectories: [Trajectory(vehicleID: "a", samples: [sample(0, 0, 0), sample(1e13, 0, 0)])], format: .plainCSV)
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("late.convoy-index").path
            try TraceIndex.write(trace, to: path)
            let error = try #require(loadError(path))
            #expect(error.field == "time", "\(error)")
            #expect(throws: InputError.self) { try TraceIndex.open(path: path) }
        }
    }

    @Test func indexWithAnOverflowingBlockOffsetIsRefused() throws {
        let trace = try Trace.load(path: fixture("fcd_minimal.xml"))
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("bad.convoy-index").path
            try TraceIndex.write(trace, to: path)
            var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            let table = bytes[16..<24].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            // First entry: offset near UInt64.max, so offset + length wraps around.
            for i in 0..<8 { bytes[table + i] = 0xFF }
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let error = try #require(throws: InputError.self) { try TraceIndex.open(path: path) }
            #expect(error.message.contains("corrupt trace index"), "\(error)")
        }
    }

    @Test func boundChecksArePure() {
        #expect(timeProblem(1e9) == nil && timeProblem(-1e9) == nil)
        #expect(timeProblem(1e9.nextUp) != nil && timeProblem(.nan) != nil && timeProblem(.infinity) != nil)
        #expect(coordinateProblem(1e9, axis: .x, geographic: false) == nil)
        #expect(coordinateProblem(-1e9.nextUp * 1.0000001, axis: .y, geographic: false) != nil)
        #expect(coordinateProblem(90, axis: .y, geographic: true) == nil)
        #expect(coordinateProblem(90.000001, axis: .y, geographic: true) != nil)
        #expect(coordinateProblem(180, axis: .x, geographic: true) == nil)
        #expect(coordinateProblem(-180.000001, axis: .x, geographic: true) != nil)
        #expect(sampleProblem(TraceSample(time: 0, position: Position(x: 0, y: 0), speed: .infinity), geographic: false)?.field == .speed)
        // The UTM zone of any longitude, never a trap.
        #expect(UTM.zone(lon: 1e308) == 60 && UTM.zone(lon: -1e308) == 1 && UTM.zone(lon: 180) == 60 && UTM.zone(lon: 11.3) == 32)
        _ = UTM.zone(lon: .nan)
    }

    // MARK: 3: FIFOs, directories, devices

    @Test(arguments: entryPoints)
    func fifoIsRefusedWithoutBlocking(_ entry: EntryPoint) async throws {
        try await withTemporaryDirectoryPath { dir in
            let path = dir + "/trace.fifo"
            try #require(mkfifo(path, 0o600) == 0)
            let result = await withHardTimeout(seconds: 10) { outcome(entry, path) }
            guard let result else {
                // Unblock the reader: opening the write end lets its open() return.
                let writer = open(path, O_WRONLY | O_NONBLOCK)
                if writer >= 0 { close(writer) }
                Issue.record("\(entry.name) blocked on a FIFO for 10 s")
                return
            }
            #expect(result == "\(path): is a FIFO (named pipe), expected a regular file")
        }
    }

    @Test(arguments: entryPoints)
    func directoryIsRefusedByName(_ entry: EntryPoint) throws {
        try withTemporaryDirectory { dir in
            // A directory next to which an index could be written, too.
            let path = dir.appendingPathComponent("trace.xml").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
            let result = outcome(entry, path)
            #expect(result == "\(path): is a directory, expected \(entry.expected)")
            #expect(!result.contains("NSCocoaErrorDomain"))
        }
    }

    @Test func characterDeviceIsRefused() {
        let error = loadError("/dev/null")
        #expect(error?.description == "/dev/null: is a character device, expected a regular file")
    }

    @Test func fileTypeProblemNamesTheType() {
        #expect(fileTypeProblem(mode: S_IFREG | 0o644, expected: "a trace file") == nil)
        #expect(fileTypeProblem(mode: S_IFDIR | 0o755, expected: "a trace file") == "is a directory, expected a trace file")
        #expect(fileTypeProblem(mode: S_IFIFO, expected: "a trace file") == "is a FIFO (named pipe), expected a regular file")
        #expect(fileTypeProblem(mode: S_IFBLK, expected: "x")?.contains("block device") == true)
        #expect(fileTypeProblem(mode: S_IFSOCK, expected: "x")?.contains("socket") == true)
    }

    // MARK: 4: long lines and excerpts

    /// The description of an error about a huge input stays short: file, line, field and an excerpt.
    private func expectShort(_ error: InputError, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(error.description.count < error.file.count + 250, "\(error.description.prefix(400))", sourceLocation: sourceLocation)
    }

    @Test(arguments: [false, true])
    func csvFieldOf8MBIsRefusedOnItsLine(gzip: Bool) throws {
        let content = "time,id,x,y\n0,a,0,0\n1," + String(repeating: "a", count: 8 << 20) + ",1,1\n2,a,1,1\n"
        let data = Data(content.utf8)
        try withTemporaryFile(gzip ? "long.csv.gz" : "long.csv", gzip ? gzipStored(data) : data) { path in
            let error = try #require(loadError(path))
            #expect(error.line == 3, "\(error)")
            #expect(error.message.contains("longer than 1 MiB"), "\(error)")
            expectShort(error)
        }
    }

    @Test func csvQuotedFieldOf8MBWithLineBreaksIsRefused() throws {
        let content = "time,id,x,y\n0,a,0,0\n1,\"" + String(repeating: "ab\n", count: 3 << 20) + "\",1,1\n"
        let error = try withTemporaryFile("quoted.csv", content) { try #require(loadError($0)) }
        #expect(error.line == 3 && error.message.contains("longer than 1 MiB"), "\(error)")
        expectShort(error)
    }

    @Test func ns2NumberOf8MBIsRefusedOnItsLine() throws {
        let content = "$node_(0) set X_ " + String(repeating: "1", count: 8 << 20) + "x\n$node_(0) set Y_ 0\n"
        let error = try withTemporaryFile("long.tcl", content) { try #require(loadError($0)) }
        #expect(error.line == 1 && error.message.contains("longer than 1 MiB"), "\(error)")
        expectShort(error)
    }

    @Test func badNumbersAreQuotedAsAnExcerpt() throws {
        let digits = String(repeating: "9", count: 500_000) + "e"
        let cases: [(String, String, Int, String)] = [
            ("n.tcl", "$node_(0) set X_ \(digits)\n", 1, "X_"),
            ("n.csv", "time,id,x,y\n0,a,\(digits),0\n", 2, "x"),
            ("n.xml", xmlHead + "<timestep time=\"0\"><vehicle id=\"a\" x=\"\(digits)\" y=\"0\"/></timestep>\n</fcd-export>\n", 3, "x"),
        ]
        for (name, content, line, field) in cases {
            let error = try withTemporaryFile(name, content) { try #require(loadError($0)) }
            #expect(error.line == line && error.field == field, "\(error.description.prefix(300))")
            #expect(error.message.contains("found \"" + String(repeating: "9", count: 40) + "…\""), "\(error.description.prefix(300))")
            expectShort(error)
        }
    }

    @Test func xmlTagOf8MBIsRefusedOnItsLine() throws {
        let content = xmlHead + "<timestep time=\"0\">\n<vehicle id=\"" + String(repeating: "v", count: 8 << 20) + "\" x=\"0\" y=\"0\"/>\n</timestep>\n</fcd-export>\n"
        let error = try withTemporaryFile("tag.xml", content) { try #require(loadError($0)) }
        #expect(error.line == 4 && error.message.contains("longer than 1 MiB"), "\(error)")
        expectShort(error)
    }

    @Test func xmlCommentOf8MBIsRefusedOnItsLine() throws {
        let content = "<?xml version=\"1.0\"?>\n<!--" + String(repeating: "c\n", count: 4 << 20) + "-->\n<fcd-export>\n</fcd-export>\n"
        let error = try withTemporaryFile("comment.xml", content) { try #require(loadError($0)) }
        #expect(error.line == 2 && error.message.contains("longer than 1 MiB"), "\(error)")
        expectShort(error)
    }

    @Test func linesUpToTheLimitAreRead() throws {
        // A vehicle id of a million characters is odd, but within the 1 MiB line limit.
        let id = String(repeating: "v", count: 1_000_000)
        let trace = try withTemporaryFile("longid.csv", "time,id,x,y\n0,\(id),0,0\n1,\(id),1,1\n") { try Trace.load(path: $0) }
        #expect(trace.trajectories.map(\.vehicleID) == [id])
        let error = try withTemporaryFile("twice.csv", "time,id,x,y\n0,\(id),0,0\n0,\(id),1,1\n") { try #require(loadError($0)) }
        #expect(error.message.contains("appears twice"))
        expectShort(error)
    }

    @Test func excerptCutsLongText() {
        #expect(excerpt("short") == "short")
        #expect(excerpt(String(repeating: "é", count: 40)) == String(repeating: "é", count: 40))
        #expect(excerpt(String(repeating: "é", count: 41)) == String(repeating: "é", count: 40) + "…")
        #expect(excerpt(bytes: ArraySlice(Array(String(repeating: "x", count: 10_000).utf8))) == String(repeating: "x", count: 40) + "…")
        #expect(excerpt(bytes: ArraySlice(Array("abc".utf8))) == "abc")
    }

    // MARK: 5: CSV header lacking a column

    @Test func csvHeaderLackingAColumnNamesIt() throws {
        let cases: [(header: String, field: String, message: String)] = [
            ("id,time,y", "x", "CSV header has id, time, y but no column x (expected columns: time, id, x, y or lon, lat"),
            ("time,id,lon", "lat", "but no column lat"),
            ("time,x,y", "id", "but no column id"),
            ("time;id;speed", "x", "but no columns x, y (or lon, lat)"),
            ("timestep_time;vehicle_id;vehicle_y", "x", "CSV header has timestep_time, vehicle_id, vehicle_y but no column x"),
        ]
        for (header, field, message) in cases {
            for gzip in [false, true] {
                let data = Data((header + "\n0,a,1\n").utf8)
                let error = try withTemporaryFile(gzip ? "h.csv.gz" : "h.csv", gzip ? gzipStored(data) : data) { try #require(loadError($0)) }
                #expect(error.line == 1, "\(error)")
                #expect(error.field == field, "\(error)")
                #expect(error.message.contains(message), "\(error)")
            }
        }
    }
}
