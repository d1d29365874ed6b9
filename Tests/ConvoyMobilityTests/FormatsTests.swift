import ConvoyCore
@testable import ConvoyMobility
import Foundation
import Testing

/// The SUMO samples (Acosta scenario, SUMO 1.28, t = 300…309) are one simulation written in several
/// formats and frames; fcd_xy.xml is the reference.
@Suite struct FormatsTests {
    let reference: Trace
    let acosta: GeoProjection

    init() throws {
        reference = try Trace.load(path: fixture("fcd_xy.xml"))
        acosta = try GeoProjection.sumoNetwork(path: fixture("acosta_location.net.xml"))
    }

    /// The largest distance between corresponding samples (same vehicle, same index) after adding `shift`.
    func largestDifference(_ trace: Trace, shift: Position = Position(x: 0, y: 0)) throws -> Double {
        var worst = 0.0
        for expected in reference.trajectories {
            let actual = try #require(trace.trajectory(for: expected.vehicleID))
            #expect(actual.samples.map(\.time) == expected.samples.map(\.time))
            for (a, e) in zip(actual.samples, expected.samples) {
                worst = max(worst, Position(x: a.position.x + shift.x, y: a.position.y + shift.y).distance(to: e.position))
            }
        }
        return worst
    }

    @Test func networkProjectionIsReadFromTheNet() {
        #expect(acosta == .utm(zone: 32, south: false, offsetX: -683542.41, offsetY: -4928877.56))
    }

    @Test func utmFormulaMatchesKnownPoint() {
        // SUMO's own output: fcd_geo.xml and fcd_utm.xml, first sample of Audinot_12_1.
        let (e, n) = UTM.forward(lon: 11.317468, lat: 44.498483, zone: 32, south: false)
        #expect(abs(e - 684239.24) < 0.1 && abs(n - 4929852.86) < 0.1)
    }

    @Test func geoXMLWithTheNetworkProjectionLandsOnTheNetworkFrame() throws {
        let trace = try Trace.load(path: fixture("fcd_geo.xml"), projection: acosta)
        #expect(trace.format == .sumoFCDXML)
        #expect(trace.coordinateFrame == .geographic(projection: acosta, guessed: false))
        // Six decimals of a degree are about 0.1 m.
        #expect(try largestDifference(trace) < 0.1)
        #expect(trace.trajectories.map { $0.samples.map(\.speed) } == reference.trajectories.map { $0.samples.map(\.speed) })
    }

    @Test func geoXMLWithTheDefaultProjectionMatchesUpToAConstantOffset() throws {
        let trace = try Trace.load(path: fixture("fcd_geo.xml"))
        // Default: UTM zone 32 (that of the first sample), shifted so that the first sample is (0, 0).
        guard case .geographic(.utm(32, false, let dx, let dy), false) = trace.coordinateFrame else {
            Issue.record("frame \(trace.coordinateFrame)")
            return
        }
        #expect(abs(dx + 684239.24) < 0.1 && abs(dy + 4929852.86) < 0.1)
        let first = try #require(trace.trajectory(for: "Audinot_12_1")?.samples.first)
        #expect(first.position == Position(x: 0, y: 0))
        // SUMO built the network in that same zone: the frames differ by a constant offset only.
        let shift = Position(x: 696.83, y: 975.30)
        let difference = try largestDifference(trace, shift: shift)
        #expect(difference < 0.2, "\(difference)")  // both files round to about 0.1 m
        // Local equirectangular keeps true north instead: rotated by the grid convergence (about
        // 1.6° here, 2.3° east of the zone's meridian), so it agrees only up to ~11 m over 400 m.
        let local = try Trace.load(path: fixture("fcd_geo.xml"), projection: .localEquirectangular(originLon: 11.317468, originLat: 44.498483))
        let localDifference = try largestDifference(local, shift: shift)
        #expect(localDifference > 1 && localDifference < 15)
        // Distances are true: the two Audinot cars 9 s apart match within 0.1 %.
        let a = try #require(local.trajectory(for: "Audinot_12_1")), r = try #require(reference.trajectory(for: "Audinot_12_1"))
        let d = a.samples[0].position.distance(to: a.samples[9].position)
        let dr = r.samples[0].position.distance(to: r.samples[9].position)
        #expect(abs(d - dr) / dr < 0.001)
    }

    @Test func utmXMLIsMetricAndShiftedByTheNetOffset() throws {
        let raw = try Trace.load(path: fixture("fcd_utm.xml"))
        #expect(raw.coordinateFrame == .utm(offsetX: 0, offsetY: 0))
        #expect(raw.trajectory(for: "Audinot_12_1")?.samples[0].position == Position(x: 684239.24, y: 4929852.86))
        let shifted = try Trace.load(path: fixture("fcd_utm.xml"), projection: acosta)
        #expect(shifted.coordinateFrame == .utm(offsetX: -683542.41, offsetY: -4928877.56))
        #expect(try largestDifference(shifted) < 0.011)
    }

    @Test func sumoCSVEqualsTheXML() throws {
        let trace = try Trace.load(path: fixture("fcd.csv"))
        #expect(trace.format == .sumoFCDCSV)
        #expect(trace.coordinateFrame == .metric)
        #expect(trace.trajectories == reference.trajectories)
    }

    @Test func geoCSVIsRecognisedFromItsValues() throws {
        let trace = try Trace.load(path: fixture("fcd_geo.csv"), projection: acosta)
        #expect(trace.format == .plainCSV)
        #expect(trace.coordinateFrame == .geographic(projection: acosta, guessed: true))
        #expect(try largestDifference(trace) < 0.1)
        // Forcing metres keeps the degrees as they are.
        let metric = try Trace.load(path: fixture("fcd_geo.csv"), options: TraceLoadOptions(coordinates: .metric))
        #expect(metric.trajectory(for: "bus_140_120")?.samples[0].position == Position(x: 11.319017, y: 44.495267))
    }

    @Test func geoXMLWithoutConfigurationIsRecognisedFromItsValues() throws {
        let trace = try Trace.load(path: fixture("fcd_geo_z_monaco.xml"))
        guard case .geographic(.utm(zone: 32, south: false, _, _), guessed: true) = trace.coordinateFrame else {
            Issue.record("frame \(trace.coordinateFrame)")
            return
        }
        #expect(trace.trajectories.map(\.vehicleID) == ["0", "1"])
        let zero = try #require(trace.trajectory(for: "0"))
        #expect(zero.samples.count == 5 && zero.start == 100 && zero.end == 104)
        #expect(zero.samples[0].position == Position(x: 0, y: 0))
        #expect(zero.samples[4].speed == 12.44 && zero.samples[4].angle == 15.61)
        // 13.12 m/s at 101 s: about 13 m covered between 100 and 101.
        let step = zero.samples[0].position.distance(to: zero.samples[1].position)
        #expect(step > 11 && step < 14)
    }

    @Test func ns2SetdestMovesTowardsTheDestination() throws {
        let trace = try Trace.load(path: fixture("ns2mobility.tcl"))
        #expect(trace.format == .ns2)
        #expect(trace.trajectories.map(\.vehicleID) == ["0", "1", "2"])
        let car = try #require(trace.trajectory(for: "0"))
        #expect(car.start == 300)
        // setdest at t starts the move: at 300 and 301 the car is still where it was set.
        #expect(car.position(at: 300) == Position(x: 696.83, y: 975.3))
        #expect(car.position(at: 301) == Position(x: 696.83, y: 975.3))
        // From 301 towards (708.46, 971.02) at 12.40 m/s: 12.39 m, arriving just before 302.
        #expect(close(car.position(at: 301.5), Position(x: 702.65, y: 973.16), tolerance: 0.02))
        #expect(close(car.position(at: 302), Position(x: 708.46, y: 971.02), tolerance: 0.01))
        // The last setdest (309, to (806.26, 935.06) at 13.79 m/s, 13.78 m away) ends with the arrival.
        #expect(abs(car.end - 309.999) < 0.01)
        #expect(car.samples.last?.position == Position(x: 806.26, y: 935.06))
        let bus = try #require(trace.trajectory(for: "2"))
        #expect(bus.samples.count == 10)
        #expect(bus.samples.allSatisfy { $0.position == Position(x: 830.14, y: 621.6) })
        #expect(bus.end == 309)
    }

    @Test func ns2ArrivalBeforeTheNextCommandIsASample() throws {
        let trace = try withTemporaryFile("m.tcl", """
            # a node that arrives, waits, and moves on
            $node_(car-7) set X_ 0
            $node_(car-7) set Y_ 0
            $node_(car-7) set Z_ 0
            $ns_ at 10.0 "$node_(car-7) setdest 100 0 10"
            $ns_ at 30.0 "$node_(car-7) setdest 100 50 5"
            """) { try Trace.load(path: $0) }
        let node = try #require(trace.trajectories.first)
        #expect(node.vehicleID == "car-7")
        #expect(node.samples.map(\.time) == [10, 20, 30, 40])
        #expect(node.position(at: 15) == Position(x: 50, y: 0))
        #expect(node.position(at: 25) == Position(x: 100, y: 0))
        #expect(node.position(at: 35) == Position(x: 100, y: 25))
    }

    @Test func gzipIsReadTransparently() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml.gz"))
        #expect(trace.gzip)
        #expect(trace.format == .sumoFCDXML)
        #expect(trace.trajectories == reference.trajectories)
    }

    @Test func truncatedGzipNamesTheFile() throws {
        let full = try Data(contentsOf: URL(fileURLWithPath: fixture("fcd_xy.xml.gz")))
        for cut in [full.count - 4, full.count / 2, 12] {
            try withTemporaryFile("cut.xml.gz", full.prefix(cut)) { path in
                let error = try #require(loadError(path))
                #expect(error.file == path)
                #expect(error.message.contains("truncated"), "\(error)")
            }
        }
        var corrupt = full
        corrupt[full.count / 2] ^= 0xFF
        corrupt[full.count / 2 + 1] ^= 0xFF
        try withTemporaryFile("bad.xml.gz", corrupt) { path in
            let error = try #require(loadError(path))
            #expect(error.file == path)
            #expect(error.message.contains("gzip") || error.message.contains("XML"), "\(error)")
        }
    }

    @Test func infoFiguresAgreeAcrossFormats() throws {
        for name in ["fcd_xy.xml", "fcd_xy.xml.gz", "fcd_geo.xml", "fcd_utm.xml", "fcd.csv", "fcd_geo.csv", "fcd_minimal.xml"] {
            let info = TraceInfo(try Trace.load(path: fixture(name)))
            #expect(info.vehicles == 3, "\(name)")
            #expect(info.samples == 30, "\(name)")
            #expect(info.start == 300 && info.end == 309, "\(name)")
            #expect(info.samplingInterval == 1, "\(name)")
            #expect(info.peakConcurrentVehicles == 3 && info.meanConcurrentVehicles == 3, "\(name)")
        }
        let xy = TraceInfo(reference)
        #expect(xy.coordinateFrame == "x/y metres")
        #expect(xy.minX == 584.92 && xy.maxX == 830.14 && xy.minY == 621.60 && xy.maxY == 975.30)
        let ns2 = TraceInfo(try Trace.load(path: fixture("ns2mobility.tcl")))
        #expect(ns2.vehicles == 3 && ns2.start == 300 && ns2.peakConcurrentVehicles == 3)
        #expect(ns2.samplingInterval == 1)
        #expect(ns2.format == "ns2-mobility")
        let gz = TraceInfo(try Trace.load(path: fixture("fcd_xy.xml.gz")))
        #expect(gz.format == "sumo-fcd-xml (gzip)")
    }

    @Test func concurrencyLeavesGapsOut() throws {
        // a: 0…10 s, gone 10…30 s, back 30…40 s; b: 0…40 s.
        var csv = "time,id,x,y\n"
        for t in stride(from: 0, through: 40, by: 1) {
            if t <= 10 || t >= 30 { csv += "\(t),a,\(t),0\n" }
            csv += "\(t),b,0,\(t)\n"
        }
        let info = try withTemporaryFile("gap.csv", csv) { TraceInfo(try Trace.load(path: $0)) }
        #expect(info.peakConcurrentVehicles == 2)
        #expect(abs(info.meanConcurrentVehicles - 1.5) < 1e-9)  // (40 + 20) / 40
    }
}
