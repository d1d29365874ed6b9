/// The statistics every result of Convoy uses, so that the export, the report, the comparison and
/// the launcher's summary agree on what "p95" means.
public enum Statistics {
    /// The nearest-rank percentile: the smallest value `x` of `values` such that at least `p` % of
    /// the values are ≤ `x`, i.e. the `ceil(p/100 · n)`-th smallest (the first for p = 0). nil for
    /// an empty array. `values` need not be sorted; NaNs are not expected.
    public static func percentile(_ p: Double, of values: [Double]) -> Double? {
        percentile(p, ofSorted: values.sorted())
    }

    /// `percentile(_:of:)` for values already sorted ascending.
    public static func percentile(_ p: Double, ofSorted sorted: [Double]) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }

    /// The arithmetic mean, nil for an empty array.
    public static func mean(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }
}

/// An inclusive window of emulated time, `[since, until]`; either end may be open (nil).
public struct TimeWindow: Sendable, Equatable {
    public var since: Double?
    public var until: Double?

    public init(since: Double? = nil, until: Double? = nil) {
        self.since = since
        self.until = until
    }

    /// True when `time` lies in the window (ends included).
    public func contains(_ time: Double) -> Bool {
        if let since, time < since { return false }
        if let until, time > until { return false }
        return true
    }

    /// True when neither end is set.
    public var isUnbounded: Bool { since == nil && until == nil }

    /// The SQL condition on `column` for this window with its arguments (`"1"` when unbounded).
    func sqlCondition(column: String) -> (sql: String, arguments: [Double]) {
        var parts: [String] = []
        var arguments: [Double] = []
        if let since {
            parts.append("\(column) >= ?")
            arguments.append(since)
        }
        if let until {
            parts.append("\(column) <= ?")
            arguments.append(until)
        }
        return (parts.isEmpty ? "1" : parts.joined(separator: " AND "), arguments)
    }
}
