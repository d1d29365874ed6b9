import ConvoyCore

/// One observation of a vehicle in a trace: where it was at emulated time `time`.
public struct TraceSample: Sendable, Equatable {
    /// Emulated time in seconds.
    public var time: Double
    /// Position in the scenario's local metric frame.
    public var position: Position
    /// Speed in m/s, when the trace gives one.
    public var speed: Double?
    /// Heading in degrees (SUMO convention: 0 is north, clockwise), when the trace gives one.
    public var angle: Double?

    public init(time: Double, position: Position, speed: Double? = nil, angle: Double? = nil) {
        self.time = time
        self.position = position
        self.speed = speed
        self.angle = angle
    }
}

/// The movement of one vehicle: its samples in strictly increasing time, and the rule that turns
/// them into a position at any emulated time.
///
/// Between two consecutive samples the position is interpolated linearly. Two consecutive samples
/// further apart than `maxGap` mean the vehicle left the scenario and came back (e.g. it drove out of
/// the simulated area): strictly between them the vehicle is absent and `position(at:)` is `nil`.
public struct Trajectory: Sendable, Equatable {
    /// The vehicle's id as the trace names it (any string).
    public var vehicleID: String
    /// Samples in strictly increasing `time`.
    public var samples: [TraceSample]
    /// Two consecutive samples further apart than this many seconds are a gap in which the vehicle is
    /// absent. Fixed when the trajectory is made; changing `samples` afterwards does not recompute it.
    public var maxGap: Double

    /// A trajectory from samples in strictly increasing time (a precondition).
    ///
    /// - Parameter maxGap: seconds between consecutive samples beyond which the vehicle counts as
    ///   absent; `nil` picks `Trajectory.defaultMaxGap(for:)`.
    public init(vehicleID: String, samples: [TraceSample], maxGap: Double? = nil) {
        precondition(Self.isStrictlyIncreasing(samples), "trajectory samples must be in strictly increasing time")
        self.init(unchecked: vehicleID, samples: samples, maxGap: maxGap)
    }

    /// For readers that have already checked the time order.
    init(unchecked vehicleID: String, samples: [TraceSample], maxGap: Double? = nil) {
        self.vehicleID = vehicleID
        self.samples = samples
        self.maxGap = maxGap ?? Self.defaultMaxGap(for: samples)
    }

    /// Time of the first sample; `+infinity` for a trajectory without samples (never present).
    public var start: Double { samples.first?.time ?? .infinity }

    /// Time of the last sample; `-infinity` for a trajectory without samples (never present).
    public var end: Double { samples.last?.time ?? -.infinity }

    /// Position at emulated time `t`, linearly interpolated between the two samples around it.
    ///
    /// `nil` before `start`, after `end`, and strictly inside a gap (two consecutive samples more
    /// than `maxGap` apart). At a sample's own time this is exactly that sample's position.
    /// Runs in O(log n).
    public func position(at t: Double) -> Position? {
        guard !samples.isEmpty, t >= start, t <= end else { return nil }
        let low = lastSample(atOrBefore: t)
        let before = samples[low]
        if before.time == t || low == samples.count - 1 { return before.position }
        let after = samples[low + 1]
        let interval = after.time - before.time
        if interval > maxGap { return nil }
        return before.position.interpolated(to: after.position, fraction: (t - before.time) / interval)
    }

    /// Speed (m/s) at `t` where `position(at:)` is defined: the samples' own speeds interpolated
    /// when the trace gives them, else the distance between the samples around `t` over their interval.
    public func speed(at t: Double) -> Double? {
        guard position(at: t) != nil else { return nil }
        let low = lastSample(atOrBefore: t)
        let before = samples[low]
        guard low + 1 < samples.count else { return before.speed ?? (low > 0 ? Self.speed(samples[low - 1], before) : 0) }
        let after = samples[low + 1]
        if let a = before.speed, let b = after.speed { return a + (b - a) * (t - before.time) / (after.time - before.time) }
        return Self.speed(before, after)
    }

    /// The index of the last sample with time ≤ `t` (binary search; `t` ≥ `start`).
    private func lastSample(atOrBefore t: Double) -> Int {
        var low = 0
        var high = samples.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if samples[mid].time <= t { low = mid } else { high = mid - 1 }
        }
        return low
    }

    private static func speed(_ a: TraceSample, _ b: TraceSample) -> Double {
        a.position.distance(to: b.position) / (b.time - a.time)
    }

    /// Whether the vehicle is in the scenario at emulated time `t` (`position(at: t) != nil`).
    public func isPresent(at t: Double) -> Bool { position(at: t) != nil }

    /// The default `maxGap`: 3 × the median interval between consecutive samples, at least 2 s
    /// (also 2 s when there are fewer than two samples).
    public static func defaultMaxGap(for samples: [TraceSample]) -> Double {
        let minimum = 2.0
        guard samples.count >= 2 else { return minimum }
        var intervals = [Double]()
        intervals.reserveCapacity(samples.count - 1)
        for i in 1..<samples.count { intervals.append(samples[i].time - samples[i - 1].time) }
        intervals.sort()
        let mid = intervals.count / 2
        let median = intervals.count % 2 == 1 ? intervals[mid] : (intervals[mid - 1] + intervals[mid]) / 2
        return max(minimum, 3 * median)
    }

    static func isStrictlyIncreasing(_ samples: [TraceSample]) -> Bool {
        guard samples.count >= 2 else { return true }
        for i in 1..<samples.count where !(samples[i].time > samples[i - 1].time) { return false }
        return true
    }
}
