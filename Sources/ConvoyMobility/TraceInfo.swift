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

    /// The figures of `trace`. Concurrency counts a vehicle as present from its first to its last
    /// sample except inside gaps (consecutive samples more than its `maxGap` apart), like
    /// `Trajectory.isPresent(at:)`; the mean is the time-average over the trace's span.
    public init(_ trace: Trace) {
        format = trace.format.rawValue + (trace.gzip ? " (gzip)" : "")
        coordinateFrame = trace.coordinateFrame.description
        vehicles = trace.trajectories.count
        var count = 0
        var minX = Double.infinity, maxX = -Double.infinity, minY = Double.infinity, maxY = -Double.infinity
        // Intervals between consecutive samples, counted at microsecond resolution (for the median).
        // The key is the number of microseconds as a Double (integral): no conversion to an integer
        // type, so any span a `Trace` can hold (even one built in code, beyond `TraceLimits`) is safe.
        var intervalCounts: [Double: Int] = [:]
        var events: [(time: Double, delta: Int)] = []
        // Run-length batching: consecutive intervals are nearly always equal.
        var lastInterval = 0.0, lastIntervalCount = 0
        for t in trace.trajectories {
            count += t.samples.count
            var segmentStart = t.samples.first?.time
            for (i, sample) in t.samples.enumerated() {
                let p = sample.position
                if p.x < minX { minX = p.x }
                if p.x > maxX { maxX = p.x }
                if p.y < minY { minY = p.y }
                if p.y > maxY { maxY = p.y }
                guard i > 0 else { continue }
                let interval = sample.time - t.samples[i - 1].time
                let micros = (interval * 1e6).rounded()
                if micros == lastInterval {
                    lastIntervalCount += 1
                } else {
                    if lastIntervalCount > 0 { intervalCounts[lastInterval, default: 0] += lastIntervalCount }
                    lastInterval = micros
                    lastIntervalCount = 1
                }
                if interval > t.maxGap, let begin = segmentStart {
                    events += [(begin, 1), (t.samples[i - 1].time, -1)]
                    segmentStart = sample.time
                }
            }
            if let begin = segmentStart, let last = t.samples.last?.time { events += [(begin, 1), (last, -1)] }
        }
        if lastIntervalCount > 0 { intervalCounts[lastInterval, default: 0] += lastIntervalCount }
        samples = count
        start = trace.trajectories.map(\.start).min() ?? 0
        end = trace.trajectories.map(\.end).max() ?? 0
        let intervals = intervalCounts.sorted { $0.key < $1.key }
        let total = intervals.reduce(0) { $0 + $1.value }
        var seen = 0
        samplingInterval = nil
        for (micros, n) in intervals {
            seen += n
            if seen > total / 2 {
                samplingInterval = micros / 1e6
                break
            }
        }
        self.minX = count > 0 ? minX : 0
        self.maxX = count > 0 ? maxX : 0
        self.minY = count > 0 ? minY : 0
        self.maxY = count > 0 ? maxY : 0
        // Concurrency: sweep over presence intervals; arrivals before departures at the same instant.
        events.sort { $0.time != $1.time ? $0.time < $1.time : $0.delta > $1.delta }
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
        format:              \(format)
        coordinate frame:    \(coordinateFrame)
        vehicles:            \(vehicles)
        samples:             \(samples)
        time span:           \(f(start)) – \(f(end)) s (\(f(end - start)) s)
        sampling interval:   \(samplingInterval.map { f($0) + " s" } ?? "n/a")
        concurrent vehicles: peak \(peakConcurrentVehicles), mean \(f(meanConcurrentVehicles))
        bounding box:        x \(f(minX)) – \(f(maxX)), y \(f(minY)) – \(f(maxY)) m
        """
    }
}
