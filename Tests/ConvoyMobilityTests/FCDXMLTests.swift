import ConvoyCore
import ConvoyMobility
import Testing

/// Golden values below are copied from the fixtures (SUMO 1.28 output, Acosta scenario, t = 300…309).
@Suite struct FCDXMLTests {
    @Test func readsRealSUMOSample() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml"))
        #expect(trace.format == .sumoFCDXML)
        #expect(trace.trajectories.map(\.vehicleID) == ["Audinot_12_1", "Audinot_12_3", "bus_140_120"])
        for trajectory in trace.trajectories {
            #expect(trajectory.samples.count == 10)
            #expect(trajectory.start == 300)
            #expect(trajectory.end == 309)
            #expect(trajectory.maxGap == 3)  // 1 s sampling
        }
    }

    @Test func goldenPositionsAtSampleTimes() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml"))
        let audinot1 = try #require(trace.trajectory(for: "Audinot_12_1"))
        #expect(audinot1.position(at: 300) == Position(x: 696.83, y: 975.30))
        #expect(audinot1.position(at: 305) == Position(x: 755.56, y: 953.70))
        #expect(audinot1.position(at: 309) == Position(x: 806.26, y: 935.06))
        let audinot3 = try #require(trace.trajectory(for: "Audinot_12_3"))
        #expect(audinot3.position(at: 303) == Position(x: 595.59, y: 874.93))
        #expect(audinot3.samples[3].speed == 13.54)
        #expect(audinot3.samples[3].angle == 22.86)
        let bus = try #require(trace.trajectory(for: "bus_140_120"))
        #expect(bus.position(at: 304.5) == Position(x: 830.14, y: 621.60))
        #expect(bus.samples[0].speed == 0)
    }

    @Test func interpolatesHalfwayBetweenSamples() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml"))
        let audinot1 = try #require(trace.trajectory(for: "Audinot_12_1"))
        // (696.83, 975.30) at 300 and (708.46, 971.02) at 301.
        #expect(close(audinot1.position(at: 300.5), Position(x: 702.645, y: 973.16), tolerance: 1e-9))
        let audinot3 = try #require(trace.trajectory(for: "Audinot_12_3"))
        // (612.66, 915.43) at 307 and (615.49, 922.14) at 308; a quarter of the way.
        #expect(close(audinot3.position(at: 307.25), Position(x: 613.3675, y: 917.1075), tolerance: 1e-9))
    }

    @Test func absentOutsideTheTrace() throws {
        let trace = try Trace.load(path: fixture("fcd_xy.xml"))
        for trajectory in trace.trajectories {
            #expect(trajectory.position(at: 0) == nil)
            #expect(trajectory.position(at: 299.99) == nil)
            #expect(trajectory.position(at: 309.01) == nil)
        }
    }

    @Test(arguments: ["fcd_minimal.xml", "fcd_extra.xml"])
    func otherAttributeSetsGiveTheSameTrajectories(name: String) throws {
        let reference = try Trace.load(path: fixture("fcd_xy.xml"))
        let other = try Trace.load(path: fixture(name))
        #expect(other.format == .sumoFCDXML)
        #expect(other.trajectories == reference.trajectories)
    }

    @Test func lonLatAttributesAreProjected() throws {
        let trace = try withTemporaryFile("lonlat.xml", """
            <fcd-export>
                <timestep time="0.00">
                    <vehicle id="a" lon="11.317468" lat="44.498483" speed="1"/>
                </timestep>
                <timestep time="1.00">
                    <vehicle id="a" lon="11.317613" lat="44.498441" speed="1"/>
                </timestep>
            </fcd-export>
            """) { try Trace.load(path: $0) }
        guard case .geographic(.utm(zone: 32, south: false, _, _), guessed: false) = trace.coordinateFrame else {
            Issue.record("frame \(trace.coordinateFrame)")
            return
        }
        let a = try #require(trace.trajectory(for: "a"))
        #expect(a.samples[0].position == Position(x: 0, y: 0))
        // The same two points as Audinot_12_1 at 300 and 301 s in fcd_utm.xml: 11.63 m east, 4.28 m south.
        #expect(close(a.samples[1].position, Position(x: 11.63, y: -4.28), tolerance: 0.1))
    }

    @Test func lonLatOutOfRangeIsRefused() throws {
        let error = try withTemporaryFile("lonlat.xml", """
            <fcd-export><timestep time="0"><vehicle id="a" lon="200" lat="44.5"/></timestep></fcd-export>
            """) { try #require(loadError($0)) }
        // Named as written (the lon attribute), on its line.
        #expect(error.field == "lon")
        #expect(error.line == 1)
        #expect(error.message.contains("longitude out of range"))
    }

    @Test func unicodeAndSpaceIdsEnteringAndLeaving() throws {
        let trace = try Trace.load(path: fixture("fcd_ids.xml"))
        // Persons and containers are not vehicles; sorted by start time.
        #expect(trace.trajectories.map(\.vehicleID) == ["Fahrzeug Ö 1", "🚗 & \"co\""])
        let car = trace.trajectories[0]
        #expect(car.start == 1 && car.end == 2)
        #expect(car.samples[0].speed == 10 && car.samples[0].angle == 90)
        let emoji = trace.trajectories[1]
        #expect(emoji.start == 2 && emoji.end == 3)
        #expect(emoji.samples[0].speed == nil && emoji.samples[0].angle == nil)

        // Who is present when: nobody at 0.5 (empty timestep), one at 1.5, both at 2, one at 2.5, nobody at 3.5.
        func present(_ t: Double) -> [String] { trace.trajectories.filter { $0.isPresent(at: t) }.map(\.vehicleID) }
        #expect(present(0.5) == [])
        #expect(present(1.5) == ["Fahrzeug Ö 1"])
        #expect(present(2) == ["Fahrzeug Ö 1", "🚗 & \"co\""])
        #expect(present(2.5) == ["🚗 & \"co\""])
        #expect(present(3.5) == [])
        #expect(close(emoji.position(at: 2.5), Position(x: 105, y: 102)))
    }

    @Test func vehicleThatLeavesAndComesBackHasAGap() throws {
        // v is in the trace for 0…3 and 20…22; w throughout.
        var xml = "<fcd-export>\n"
        for t in 0...22 {
            xml += "<timestep time=\"\(t).00\">"
            if t <= 3 || t >= 20 { xml += "<vehicle id=\"v\" x=\"\(t)\" y=\"0\"/>" }
            xml += "<vehicle id=\"w\" x=\"0\" y=\"\(t)\"/></timestep>\n"
        }
        xml += "</fcd-export>\n"
        let trace = try withTemporaryFile("gap.xml", xml) { try Trace.load(path: $0) }
        let v = try #require(trace.trajectory(for: "v"))
        #expect(v.samples.count == 7)
        #expect(v.position(at: 2.5) == Position(x: 2.5, y: 0))
        #expect(v.position(at: 10) == nil)
        #expect(v.position(at: 21) == Position(x: 21, y: 0))
        let w = try #require(trace.trajectory(for: "w"))
        #expect(w.position(at: 10) == Position(x: 0, y: 10))
    }
}
