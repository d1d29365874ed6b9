import ConvoyCore
import ConvoyWire

/// One second of a run, the interval `[second, second + 1)` of emulated time: a row of
/// `timeseries.csv`.
public struct TimeSeriesRow: Sendable, Equatable {
    /// The second's start, in whole emulated seconds since the run started.
    public var second: Int
    /// Requests whose `created_at` falls in the second.
    public var started: Int
    /// Requests whose `finished_at` falls in the second, by terminal status.
    public var completed: Int
    public var failed: Int
    public var expired: Int
    /// Nearest-rank latency percentiles (`latency_ms`) of the requests completed in the second;
    /// nil when none completed.
    public var p50Ms: Double?
    public var p95Ms: Double?
    public var p99Ms: Double?
    /// Vehicle processes alive at the middle of the second (`second + 0.5`).
    public var vehiclesAlive: Int
    /// RSUs up at the middle of the second: an incarnation of the RSU is alive and no fault on it
    /// is active.
    public var rsusUp: Int

    public init(second: Int, started: Int = 0, completed: Int = 0, failed: Int = 0, expired: Int = 0,
                p50Ms: Double? = nil, p95Ms: Double? = nil, p99Ms: Double? = nil, vehiclesAlive: Int = 0,
                rsusUp: Int = 0) {
        self.second = second
        self.started = started
        self.completed = completed
        self.failed = failed
        self.expired = expired
        self.p50Ms = p50Ms
        self.p95Ms = p95Ms
        self.p99Ms = p99Ms
        self.vehiclesAlive = vehiclesAlive
        self.rsusUp = rsusUp
    }
}

/// The per-second time series of a run (`timeseries.csv`), the file researchers plot from.
public enum TimeSeries {
    /// The columns of `timeseries.csv`, in order.
    public static let columns = ["second", "started", "completed", "failed", "expired", "p50_ms", "p95_ms",
                                 "p99_ms", "vehicles_alive", "rsus_up"]

    /// The rows for seconds `0 … floor(T)`, where T is the latest time recorded anywhere in the
    /// inputs (request creation or end, node start or end, fault start or end); no rows when
    /// nothing is recorded. Every second has a row, zeros included.
    ///
    /// - A node is alive at instant `m` when `started_at ≤ m` and (`ended_at` is NULL or
    ///   `m < ended_at`); a fault is active at `m` under the same rule. Both are sampled at
    ///   `m = second + 0.5`.
    /// - Open requests (no `finished_at`) count only in `started`.
    public static func rows(requests: [RequestRecord], nodes: [NodeRow], faults: [FaultRow]) -> [TimeSeriesRow] {
        var latest = -Double.infinity
        for r in requests { latest = max(latest, r.createdAt, r.finishedAt ?? -.infinity) }
        for n in nodes { latest = max(latest, n.startedAt, n.endedAt ?? -.infinity) }
        for f in faults { latest = max(latest, f.startedAt, f.endedAt ?? -.infinity) }
        guard latest.isFinite, latest >= 0 else { return [] }
        let count = Int(latest.rounded(.down)) + 1
        var rows = (0..<count).map { TimeSeriesRow(second: $0) }
        func bucket(_ time: Double) -> Int? {
            guard time >= 0 else { return nil }
            let index = Int(time.rounded(.down))
            return index < count ? index : nil
        }

        var latencies = [[Double]](repeating: [], count: count)
        for r in requests {
            if let index = bucket(r.createdAt) { rows[index].started += 1 }
            guard let status = r.status, let finished = r.finishedAt, let index = bucket(finished) else { continue }
            switch status {
            case .completed:
                rows[index].completed += 1
                if let latency = r.latencyMs { latencies[index].append(latency) }
            case .failed: rows[index].failed += 1
            case .expired: rows[index].expired += 1
            }
        }
        for index in 0..<count where !latencies[index].isEmpty {
            let sorted = latencies[index].sorted()
            rows[index].p50Ms = Statistics.percentile(50, ofSorted: sorted)
            rows[index].p95Ms = Statistics.percentile(95, ofSorted: sorted)
            rows[index].p99Ms = Statistics.percentile(99, ofSorted: sorted)
        }

        // Vehicles: a difference array over the seconds whose midpoint lies in [started_at, ended_at).
        var delta = [Int](repeating: 0, count: count + 1)
        for n in nodes where n.role == .vehicle {
            let first = max(0, Int((n.startedAt - 0.5).rounded(.up)))
            let end = n.endedAt.map { min(count, max(0, Int(($0 - 0.5).rounded(.up)))) } ?? count
            guard first < end else { continue }
            delta[first] += 1
            delta[end] -= 1
        }
        var alive = 0
        for index in 0..<count {
            alive += delta[index]
            rows[index].vehiclesAlive = alive
        }

        // RSUs: few, so check each one at each second.
        let rsuNodes = nodes.filter { $0.role == .rsu }
        let rsuIDs = Set(rsuNodes.map(\.nodeID))
        let rsuFaults = faults.filter { rsuIDs.contains($0.nodeID) }
        for index in 0..<count {
            let m = Double(index) + 0.5
            var up = Set<String>()
            for n in rsuNodes where n.startedAt <= m && (n.endedAt.map { m < $0 } ?? true) {
                up.insert(n.nodeID)
            }
            for f in rsuFaults where f.startedAt <= m && (f.endedAt.map { m < $0 } ?? true) {
                up.remove(f.nodeID)
            }
            rows[index].rsusUp = up.count
        }
        return rows
    }

    /// The CSV fields of `row`, in the order of `columns` (NULL as an empty field, reals in
    /// Swift's shortest round-trip form, as the table export writes them).
    public static func fields(_ row: TimeSeriesRow) -> [String] {
        func real(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
        return [String(row.second), String(row.started), String(row.completed), String(row.failed),
                String(row.expired), real(row.p50Ms), real(row.p95Ms), real(row.p99Ms),
                String(row.vehiclesAlive), String(row.rsusUp)]
    }
}

extension RunDatabase {
    /// The run's per-second time series (see `TimeSeries.rows`), from one consistent snapshot.
    public func timeSeries() throws -> [TimeSeriesRow] {
        let snapshot = try snapshot()
        return TimeSeries.rows(requests: snapshot.requests, nodes: snapshot.nodes, faults: snapshot.faults)
    }
}
