import ConvoyCore
import ConvoyMobility
import Foundation
import Testing

@Suite struct TrajectoryFileTests {
    @Test func roundTripsRealTrace() throws {
        try withTemporaryDirectory { dir in
            let trace = try Trace.load(path: fixture("fcd_xy.xml"))
            for (index, trajectory) in trace.trajectories.enumerated() {
                let path = dir.appendingPathComponent("vehicle-\(index).traj").path
                try TrajectoryFile.write(trajectory, to: path)
                #expect(try TrajectoryFile.read(path: path) == trajectory)
            }
        }
    }

    @Test func roundTripsUnicodeIdAbsentValuesAndExplicitMaxGap() throws {
        let trajectory = Trajectory(
            vehicleID: "🚗 Wagen \"Ö\", 1",
            samples: [
                TraceSample(time: -1.5, position: Position(x: -3, y: 1e7), speed: 0, angle: nil),
                TraceSample(time: 0, position: Position(x: 0.1, y: 0.2), speed: nil, angle: 359.99),
                TraceSample(time: 1e-9, position: Position(x: 5, y: 6)),
            ],
            maxGap: 42)
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("v.traj").path
            try TrajectoryFile.write(trajectory, to: path)
            let read = try TrajectoryFile.read(path: path)
            #expect(read == trajectory)
            #expect(read.maxGap == 42)
        }
    }

    @Test func roundTripsLongTrajectory() throws {
        // Ten hours at 1 Hz.
        let samples = (0..<36_000).map {
            TraceSample(time: Double($0), position: Position(x: Double($0) * 1.5, y: 7), speed: 1.5, angle: 90)
        }
        let trajectory = Trajectory(vehicleID: "long", samples: samples)
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("long.traj").path
            try TrajectoryFile.write(trajectory, to: path)
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int
            #expect(size == 32 + 4 + 36_000 * 40)
            #expect(try TrajectoryFile.read(path: path) == trajectory)
        }
    }

    @Test func emptyTrajectoryRoundTrips() throws {
        let trajectory = Trajectory(vehicleID: "ghost", samples: [])
        let decoded = try TrajectoryFile.decode(TrajectoryFile.encode(trajectory), file: "mem")
        #expect(decoded == trajectory)
    }

    @Test func truncatedFileIsAnInputError() throws {
        let trajectory = Trajectory(vehicleID: "v", samples: [sample(0, 0, 0), sample(1, 1, 1), sample(2, 2, 2)])
        let bytes = TrajectoryFile.encode(trajectory)
        try withTemporaryDirectory { dir in
            // Every proper prefix fails: inside the magic, the header, the id, and the samples.
            for length in [0, 5, 12, 17, 20, 33, bytes.count - 40, bytes.count - 1] {
                let path = dir.appendingPathComponent("cut-\(length).traj").path
                try bytes.prefix(length).write(to: URL(fileURLWithPath: path))
                do throws(InputError) {
                    _ = try TrajectoryFile.read(path: path)
                    Issue.record("a \(length)-byte prefix was accepted")
                } catch {
                    #expect(error.file == path)
                    #expect(length < 16 || error.message.contains("truncated"), "\(error)")
                }
            }
        }
    }

    @Test func otherCorruptionsAreInputErrors() throws {
        let trajectory = Trajectory(vehicleID: "v", samples: [sample(0, 0, 0), sample(1, 1, 1)])
        let good = TrajectoryFile.encode(trajectory)

        var badMagic = good
        badMagic[0] = UInt8(ascii: "X")
        var badVersion = good
        badVersion[8] = 9
        var trailing = good
        trailing.append(0)
        var unordered = good
        // Make the second sample's time (offset 32 + 1 + 40) equal to the first's (0).
        unordered.replaceSubrange((73)..<(81), with: [UInt8](repeating: 0, count: 8))

        let cases: [(Data, String)] = [
            (badMagic, "not a Convoy trajectory file"),
            (badVersion, "unsupported trajectory file version 9"),
            (trailing, "corrupt"),
            (unordered, "not strictly increasing"),
            (Data("time,id,x,y\n".utf8), "not a Convoy trajectory file"),
        ]
        for (data, message) in cases {
            #expect(throws: InputError.self) { try TrajectoryFile.decode(data, file: "f.traj") }
            do {
                _ = try TrajectoryFile.decode(data, file: "f.traj")
            } catch {
                #expect(error.message.contains(message), "\(error)")
                #expect(error.file == "f.traj")
            }
        }
    }

    @Test func missingFileIsAnInputError() throws {
        try withTemporaryDirectory { dir in
            let path = dir.appendingPathComponent("missing.traj").path
            #expect(throws: InputError.self) { try TrajectoryFile.read(path: path) }
        }
    }
}
