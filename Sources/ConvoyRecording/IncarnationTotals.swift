import ConvoyWire

/// Nodes report their counters and link meters as totals since they started; a restarted node
/// (a crashed RSU, say) starts again from zero. The recorder keeps each incarnation's latest
/// totals and writes the run's: counts and link meters added up over the incarnations, levels
/// (`CounterRecord.levels`) as the latest incarnation has them, and the lateness maximum as the
/// largest. Without this, a restarted node's rows would lose everything before its crash.
public struct IncarnationTotals: Sendable {
    /// Node → counter → incarnation → its latest total.
    private var counters: [String: [String: [UInt32: Int]]] = [:]
    /// (node, link, kind) → incarnation → its latest totals.
    private var links: [String: [UInt32: LinkStatRecord]] = [:]

    public init() {}

    /// `batch` (sent by `incarnation` of its node) with its counters and link meters turned into the run's totals.
    public mutating func totals(of batch: RecordBatch, incarnation: UInt32) -> RecordBatch {
        var out = batch
        out.counters = batch.counters.map { c in
            counters[c.nodeID, default: [:]][c.name, default: [:]][incarnation] = c.value
            var total = c
            total.value = Self.combine(c.name, counters[c.nodeID]![c.name]!)
            return total
        }
        out.linkStats = batch.linkStats.map { s in
            let key = "\(s.nodeID)\u{0}\(s.link)\u{0}\(s.kind)"
            links[key, default: [:]][incarnation] = s
            return links[key]!.values.reduce(into: LinkStatRecord(nodeID: s.nodeID, link: s.link, kind: s.kind)) { sum, i in
                sum.sent += i.sent
                sum.delivered += i.delivered
                sum.lost += i.lost
                sum.outOfRange += i.outOfRange
                sum.bytes += i.bytes
            }
        }
        return out
    }

    static func combine(_ name: String, _ byIncarnation: [UInt32: Int]) -> Int {
        if name == CounterRecord.lateMaximum { return byIncarnation.values.max() ?? 0 }
        if CounterRecord.levels.contains(name) { return byIncarnation.max { $0.key < $1.key }?.value ?? 0 }
        return byIncarnation.values.reduce(0, +)
    }
}
