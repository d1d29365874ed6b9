import ConvoyCore
import ConvoyMobility
import Testing

@Suite struct CSVTests {
    @Test func readsPlainCSVWithQuotedIds() throws {
        let trace = try Trace.load(path: fixture("plain.csv"))
        #expect(trace.format == .plainCSV)
        // All start at 0: sorted by id.
        #expect(trace.trajectories.map(\.vehicleID) == ["car1", "gappy", "quoted, \"id\""])
        let car = trace.trajectories[0]
        #expect(car.samples.count == 3)
        #expect(car.samples[0] == TraceSample(time: 0, position: Position(x: 0, y: 0), speed: 10, angle: 90))
        #expect(car.samples[2] == TraceSample(time: 2, position: Position(x: 20, y: 0), speed: nil, angle: nil))
        #expect(close(car.position(at: 1.5), Position(x: 15, y: 0)))
        let quoted = trace.trajectories[2]
        #expect(quoted.samples.map(\.speed) == [1.5, nil])
        #expect(close(quoted.position(at: 0.5), Position(x: 5, y: 5.5)))
    }

    @Test func gapInCSVTrace() throws {
        let trace = try Trace.load(path: fixture("plain.csv"))
        let gappy = try #require(trace.trajectory(for: "gappy"))
        #expect(gappy.maxGap == 3)
        #expect(gappy.position(at: 2.5) == Position(x: 2.5, y: 0))
        #expect(gappy.position(at: 5) == nil)
        #expect(gappy.position(at: 11) == Position(x: 101, y: 0))
    }

    @Test func fourColumnsCRLFQuotedLineBreakAndVehicleMajorOrder() throws {
        let csv = [
            "\u{FEFF}Time, ID ,X,Y",
            "0,\"two",
            "lines\",1,1",
            "1,\"two",
            "lines\",2,2",
            "",
            "0.5,b,0,0",
            "1.5,b,0,1",
        ].joined(separator: "\r\n") + "\r\n"
        let trace = try withTemporaryFile("crlf.csv", csv) { try Trace.load(path: $0) }
        #expect(trace.format == .plainCSV)
        #expect(trace.trajectories.map(\.vehicleID) == ["two\r\nlines", "b"])
        #expect(trace.trajectories[0].samples.map(\.time) == [0, 1])
        #expect(trace.trajectories[0].samples[0].speed == nil)
        #expect(trace.trajectories[1].position(at: 1) == Position(x: 0, y: 0.5))
    }

    @Test func idWithSpacesAndUnicodeUnquoted() throws {
        let csv = "time,id,x,y\n0,Wagen Ü 7,1,2\n1,Wagen Ü 7,3,4\n"
        let trace = try withTemporaryFile("u.csv", csv) { try Trace.load(path: $0) }
        #expect(trace.trajectories.map(\.vehicleID) == ["Wagen Ü 7"])
    }
}
