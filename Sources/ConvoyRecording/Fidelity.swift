import ConvoyWire

/// How faithful a run's emulation was: the link error — how far from its modelled delivery
/// instant each sampled message was really handled — and how late the nodes' timers fired, both
/// in emulated time, against the 1 ms bound. Every run reports it (`convoy report`, the
/// launcher's last lines, `convoy compare`).
public struct Fidelity: Sendable, Equatable {
    /// The bound, in ms, on the link error and the timer lateness at p99.
    public static let boundMs = 1.0

    public struct Link: Sendable, Equatable {
        public var link: String
        public var deliveries: Int
        public var p50Ms: Double?
        public var p99Ms: Double?
    }

    public var deliveries: Int
    public var p50Ms: Double?
    public var p99Ms: Double?
    public var maxMs: Double?
    public var links: [Link]
    public var timersFired: Int
    public var timersLate: Int
    public var timerLateMaxMs: Double

    /// From the sampled deliveries (`link_samples`: link, |actual − modelled| in ms) and the nodes' counters.
    public init(errors: [(link: String, ms: Double)], counters: [CounterRecord]) {
        let all = errors.map(\.ms).sorted()
        deliveries = all.count
        p50Ms = Statistics.percentile(50, ofSorted: all)
        p99Ms = Statistics.percentile(99, ofSorted: all)
        maxMs = all.last
        links = Dictionary(grouping: errors, by: \.link).map { link, rows in
            let sorted = rows.map(\.ms).sorted()
            return Link(link: link, deliveries: sorted.count, p50Ms: Statistics.percentile(50, ofSorted: sorted),
                        p99Ms: Statistics.percentile(99, ofSorted: sorted))
        }.sorted { $0.link < $1.link }
        func total(_ name: String) -> Int { counters.filter { $0.name == name }.reduce(0) { $0 + $1.value } }
        let fired = total("timers_fired"), late = total("timers_late_over_1ms")
        timersFired = fired
        timersLate = late
        timerLateMaxMs = Double(counters.filter { $0.name == "timer_late_max_us" }.map(\.value).max() ?? 0) / 1000
        // A lower bound of the timers' p99: the largest threshold more than 1 % of them exceeded.
        timerP99AtLeastMs = [(1.0, late), (10, total("timers_late_over_10ms")), (100, total("timers_late_over_100ms"))]
            .last { Double($0.1) > 0.01 * Double(max(1, fired)) }?.0 ?? 0
    }

    /// The timers' p99 lateness is at least this (ms; 0: within the bound).
    public var timerP99AtLeastMs: Double

    /// Whether more than 1 % of the timers fired over 1 ms late (their p99 is above the bound).
    public var timersLost: Bool { timerP99AtLeastMs >= Self.boundMs }
    public var linksLost: Bool { (p99Ms ?? 0) > Self.boundMs }
    public var lost: Bool { linksLost || timersLost }

    /// A speed that should hold the bound, from the measured lateness: the emulated error of a
    /// wall-clock delay scales with the speed, so the speed is cut by bound / p99 (of the links, or
    /// the timers' lower bound, at least 1.5 ms when they missed), rounded down to two significant
    /// digits. Nil when held.
    public func suggestedSpeed(current: Double) -> Double? {
        guard lost else { return nil }
        let worst = max(linksLost ? p99Ms ?? 0 : 0, timersLost ? max(timerP99AtLeastMs, 1.5 * Self.boundMs) : 0)
        guard worst > 0 else { return nil }
        let raw = current * Self.boundMs / worst
        var scale = 1.0
        while raw * scale < 10 { scale *= 10 }
        return (raw * scale).rounded(.down) / scale
    }

    /// The figures on one line.
    public var summary: String {
        "link error p50 \(RunReport.ms(p50Ms)) ms, p99 \(RunReport.ms(p99Ms)) ms over \(deliveries) deliveries; timers late by over 1 ms: "
            + "\(timersLate) of \(timersFired) (max " + String(format: "%.1f", timerLateMaxMs) + " ms)"
    }

    func text(speed: Double?) -> String {
        var out = "\nFidelity (emulated time; bound \(RunReport.ms(Self.boundMs)) ms at p99)\n  " + summary + "\n"
        if !links.isEmpty {
            out += "  by link: " + links.map { "\($0.link) p99 \(RunReport.ms($0.p99Ms)) ms (\($0.deliveries))" }.joined(separator: ", ") + "\n"
        }
        if lost {
            out += "  FIDELITY LOST: the emulation could not hold the link model's instants"
            if let speed, let suggested = suggestedSpeed(current: speed) { out += "; rerun with --speed \(suggested) or lower" }
            out += "\n"
        }
        return out
    }
}

extension RunDatabase {
    /// Every sampled delivery's link and error (|actual − modelled|, ms).
    public func linkErrors() throws -> [(link: String, ms: Double)] {
        try writer.read { db in
            // A database from before the link tables has none.
            guard try db.tableExists(LinkSampleRecord.databaseTableName) else { return [] }
            return try LinkSampleRecord.fetchAllOrdered(db).map { ($0.link, abs($0.actualAt - $0.modelledAt) * 1000) }
        }
    }

    /// The run's fidelity, from its link samples and counters.
    public func fidelity() throws -> Fidelity {
        Fidelity(errors: try linkErrors(), counters: try fetchCounters())
    }
}
