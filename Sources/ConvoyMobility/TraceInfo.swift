import ConvoyCore

/// Summary figures of a trace (`convoy trace info`).
public struct TraceInfo: Sendable, Equatable, Codable {
    public var format: String
    public var coordinateFrame: String
    public var vehicles: Int
    public var samples: Int
    public var start: Double
    public var end: Double
    /// Median time between consecutive samples of a vehicle.
    public var samplingInterval: Double?
    public var peakConcurrentVehicles: Int
    public var meanConcurrentVehicles: Double
    public var minX: Double, minY: Double, maxX: Double, maxY: Double

    enum CodingKeys: String, CodingKey {
        case format, coordinateFrame = "coordinate_frame", vehicles, samples, start, end
        case samplingInterval = "sampling_interval", peakConcurrentVehicles = "peak_concurrent_vehicles"
        case meanConcurrentVehicles = "mean_concurrent_vehicles", minX = "min_x", minY = "min_y", maxX = "max_x", maxY = "max_y"
    }

    public init(_ trace: Trace) {
        format = trace.format.rawValue
        coordinateFrame = "x/y metres"
        vehicles = trace.trajectories.count
        let all = trace.trajectories.flatMap(\.samples)
        samples = all.count
        start = trace.trajectories.map(\.start).min() ?? 0
        end = trace.trajectories.map(\.end).max() ?? 0
        var intervals: [Double] = []
        for t in trace.trajectories { intervals += zip(t.samples.dropFirst(), t.samples).map { $0.time - $1.time } }
        intervals.sort()
        samplingInterval = intervals.isEmpty ? nil : intervals[intervals.count / 2]
        minX = all.map(\.position.x).min() ?? 0
        maxX = all.map(\.position.x).max() ?? 0
        minY = all.map(\.position.y).min() ?? 0
        maxY = all.map(\.position.y).max() ?? 0
        // Concurrency: sweep over presence intervals [start, end] of every trajectory.
        var events: [(Double, Int)] = []
        for t in trace.trajectories { events += [(t.start, 1), (t.end, -1)] }
        events.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 > $1.1 }
        var current = 0, peak = 0, area = 0.0, last = start
        for (time, delta) in events {
            area += Double(current) * (time - last)
            last = time
            current += delta
            peak = max(peak, current)
        }
        peakConcurrentVehicles = peak
        meanConcurrentVehicles = end > start ? area / (end - start) : Double(peak)
    }

    public var text: String {
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        return """
        format:              \(format) (\(coordinateFrame))
        vehicles:            \(vehicles)
        samples:             \(samples)
        time span:           \(f(start)) – \(f(end)) s (\(f(end - start)) s)
        sampling interval:   \(samplingInterval.map { f($0) + " s" } ?? "n/a")
        concurrent vehicles: peak \(peakConcurrentVehicles), mean \(f(meanConcurrentVehicles))
        bounding box:        x \(f(minX)) – \(f(maxX)), y \(f(minY)) – \(f(maxY)) m
        """
    }
}
