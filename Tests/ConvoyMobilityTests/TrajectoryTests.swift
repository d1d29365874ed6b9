import ConvoyCore
import ConvoyMobility
import Testing

@Suite struct TrajectoryTests {
    let straight = Trajectory(vehicleID: "v", samples: [sample(10, 0, 0), sample(11, 10, 0), sample(12, 10, 20)])

    @Test func startAndEnd() {
        #expect(straight.start == 10)
        #expect(straight.end == 12)
    }

    @Test func positionAtSampleTimesIsTheSample() {
        #expect(straight.position(at: 10) == Position(x: 0, y: 0))
        #expect(straight.position(at: 11) == Position(x: 10, y: 0))
        #expect(straight.position(at: 12) == Position(x: 10, y: 20))
    }

    @Test func interpolatesLinearlyBetweenSamples() {
        #expect(close(straight.position(at: 10.5), Position(x: 5, y: 0)))
        #expect(close(straight.position(at: 10.25), Position(x: 2.5, y: 0)))
        #expect(close(straight.position(at: 11.75), Position(x: 10, y: 15)))
    }

    @Test func absentBeforeStartAndAfterEnd() {
        #expect(straight.position(at: 9.999) == nil)
        #expect(straight.position(at: 12.001) == nil)
        #expect(straight.position(at: -.infinity) == nil)
        #expect(straight.position(at: .nan) == nil)
        #expect(!straight.isPresent(at: 13))
        #expect(straight.isPresent(at: 10))
    }

    @Test func absentInsideAGap() {
        // Intervals 1,1,1,7,1,1: median 1, so maxGap is max(2, 3 × 1) = 3 and 3 → 10 is a gap.
        let t = Trajectory(
            vehicleID: "g",
            samples: [sample(0, 0, 0), sample(1, 1, 0), sample(2, 2, 0), sample(3, 3, 0),
                      sample(10, 100, 0), sample(11, 101, 0), sample(12, 102, 0)])
        #expect(t.maxGap == 3)
        #expect(t.position(at: 3) == Position(x: 3, y: 0))
        #expect(t.position(at: 3.001) == nil)
        #expect(t.position(at: 6.5) == nil)
        #expect(t.position(at: 9.999) == nil)
        #expect(t.position(at: 10) == Position(x: 100, y: 0))
        #expect(close(t.position(at: 10.5), Position(x: 100.5, y: 0)))
    }

    @Test func intervalOfExactlyMaxGapIsNotAGap() {
        let t = Trajectory(vehicleID: "v", samples: [sample(0, 0, 0), sample(2, 2, 0)], maxGap: 2)
        #expect(close(t.position(at: 1), Position(x: 1, y: 0)))
    }

    @Test func defaultMaxGap() {
        // Fewer than two samples, or a fast sampling rate: the 2 s floor.
        #expect(Trajectory.defaultMaxGap(for: []) == 2)
        #expect(Trajectory.defaultMaxGap(for: [sample(0, 0, 0)]) == 2)
        #expect(Trajectory.defaultMaxGap(for: [sample(0, 0, 0), sample(0.1, 0, 0), sample(0.2, 0, 0)]) == 2)
        // Median of 5, 5, 5, 100 (even count: mean of the middle two) is 5.
        let slow = [sample(0, 0, 0), sample(5, 0, 0), sample(10, 0, 0), sample(15, 0, 0), sample(115, 0, 0)]
        #expect(Trajectory.defaultMaxGap(for: slow) == 15)
        // Odd count: 2, 4, 10 → 4.
        #expect(Trajectory.defaultMaxGap(for: [sample(0, 0, 0), sample(2, 0, 0), sample(6, 0, 0), sample(16, 0, 0)]) == 12)
    }

    @Test func explicitMaxGap() {
        let t = Trajectory(vehicleID: "v", samples: [sample(0, 0, 0), sample(1, 1, 0), sample(5, 5, 0)], maxGap: 10)
        #expect(t.maxGap == 10)
        #expect(close(t.position(at: 3), Position(x: 3, y: 0)))
    }

    @Test func singleSample() {
        let t = Trajectory(vehicleID: "v", samples: [sample(7, 1, 2)])
        #expect(t.start == 7 && t.end == 7)
        #expect(t.position(at: 7) == Position(x: 1, y: 2))
        #expect(t.position(at: 6.9) == nil)
        #expect(t.position(at: 7.1) == nil)
    }

    @Test func noSamplesIsNeverPresent() {
        let t = Trajectory(vehicleID: "v", samples: [])
        #expect(t.position(at: 0) == nil)
        #expect(t.start == .infinity && t.end == -.infinity)
    }

    @Test func manySamplesBinarySearch() {
        let samples = (0..<10_000).map { sample(Double($0) * 0.5, Double($0), -Double($0)) }
        let t = Trajectory(vehicleID: "long", samples: samples)
        for i in stride(from: 0, to: 9_999, by: 997) {
            let time = Double(i) * 0.5 + 0.25
            #expect(close(t.position(at: time), Position(x: Double(i) + 0.5, y: -Double(i) - 0.5)))
        }
    }
}
