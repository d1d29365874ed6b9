import ConvoyCore
import ConvoyMobility
import Foundation
import Testing

@Suite struct TraceIndexTests {
    @Test func indexRoundTripsAndServesOneVehicle() throws {
        let trace = try Trace.load(path: fixture("fcd_ids.xml"))
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("t.convoy-index").path
            try TraceIndex.write(trace, to: path)
            let index = try TraceIndex.open(path: path)
            #expect(index.entries.map(\.vehicleID) == trace.trajectories.map(\.vehicleID))
            #expect(index.sourceFormat == .sumoFCDXML)
            #expect(try index.trajectory(for: "🚗 & \"co\"") == trace.trajectory(for: "🚗 & \"co\""))
            #expect(try index.trajectory(for: "nobody") == nil)
            // A block is a complete trajectory file.
            let bytes = try #require(try index.trajectoryBytes(for: "Fahrzeug Ö 1"))
            #expect(try TrajectoryFile.decode(bytes, file: "x") == trace.trajectory(for: "Fahrzeug Ö 1"))
            // Trace.load reads an index like any trace.
            let again = try Trace.load(path: path)
            #expect(again == trace)
        }
    }

    @Test func geoFrameSurvivesTheIndex() throws {
        let trace = try Trace.load(path: fixture("fcd_geo.xml"))
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("g.convoy-index").path
            try TraceIndex.write(trace, to: path)
            #expect(try Trace.load(path: path) == trace)
        }
    }

    @Test func cacheIsWrittenNextToTheTraceAndReusedWhileFresh() throws {
        try withTemporaryDirectory { dir in
            let tracePath = dir.appendingPathComponent("t.xml").path
            try FileManager.default.copyItem(atPath: fixture("fcd_xy.xml"), toPath: tracePath)
            let indexPath = TraceCache.indexPath(for: tracePath)
            #expect(indexPath == tracePath + ".convoy-index")
            let first = try TraceCache.load(path: tracePath)
            #expect(FileManager.default.fileExists(atPath: indexPath))
            #expect(first == (try Trace.load(path: tracePath)))
            // Fresh: served from the index even when the trace is unreadable garbage of the same age.
            let stamp = try FileManager.default.attributesOfItem(atPath: tracePath)[.modificationDate] as! Date
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: tracePath))
            // (A second earlier: file times have a coarse granularity and setting one rounds.)
            try FileManager.default.setAttributes([.modificationDate: stamp.addingTimeInterval(-1)], ofItemAtPath: tracePath)
            #expect(try TraceCache.load(path: tracePath) == first)
            // Stale: a newer trace is parsed again (and here refused).
            try FileManager.default.setAttributes([.modificationDate: stamp.addingTimeInterval(10)], ofItemAtPath: tracePath)
            #expect(throws: InputError.self) { try TraceCache.load(path: tracePath) }
        }
    }

    @Test func cacheWithOtherOptionsIsRebuilt() throws {
        try withTemporaryDirectory { dir in
            let tracePath = dir.appendingPathComponent("g.xml").path
            try FileManager.default.copyItem(atPath: fixture("fcd_geo.xml"), toPath: tracePath)
            let local = try TraceCache.load(path: tracePath)
            let projection = try GeoProjection.sumoNetwork(path: fixture("acosta_location.net.xml"))
            let onNet = try TraceCache.load(path: tracePath, options: TraceLoadOptions(projection: projection))
            #expect(local != onNet)
            #expect(onNet.coordinateFrame == .geographic(projection: projection, guessed: false))
            let index = try TraceCache.index(path: tracePath, options: TraceLoadOptions(projection: projection))
            #expect(try index.loadTrace() == onNet)
        }
    }

    @Test func corruptIndexIsAnInputError() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml"))
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("t.convoy-index").path
            try TraceIndex.write(trace, to: path)
            let full = try Data(contentsOf: URL(fileURLWithPath: path))
            try full.prefix(full.count - 10).write(to: URL(fileURLWithPath: path))
            let error = try #require(loadError(path))
            #expect(error.file == path)
            #expect(error.message.contains("trace index"), "\(error)")
        }
    }
}
