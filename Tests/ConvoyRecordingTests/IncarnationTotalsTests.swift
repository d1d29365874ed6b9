import ConvoyWire
import Testing
@testable import ConvoyRecording

/// A restarted node reports its totals from zero again: the run's totals add its incarnations up.
@Suite struct IncarnationTotalsTests {
    func batch(_ counters: [(String, Int)], sent: Int, bytes: Int) -> RecordBatch {
        RecordBatch(counters: counters.map { CounterRecord(nodeID: "rsu-1", name: $0.0, value: $0.1) },
                    linkStats: [LinkStatRecord(nodeID: "rsu-1", link: "backhaul", kind: "fed_up", sent: sent, delivered: sent, bytes: bytes)])
    }

    @Test func countsAddUpOverIncarnationsLevelsAndMaximaDoNot() {
        var totals = IncarnationTotals()
        _ = totals.totals(of: batch([("requests_served", 3), ("timer_late_max_us", 900), ("fed_adapter_parameters", 4096)], sent: 2, bytes: 200),
                          incarnation: 1)
        let first = totals.totals(of: batch([("requests_served", 5)], sent: 4, bytes: 400), incarnation: 1)
        #expect(first.counters.map(\.value) == [5] && first.linkStats.first?.bytes == 400)  // the latest total of one incarnation
        // Crashed and restarted: incarnation 2 counts from zero.
        let second = totals.totals(of: batch([("requests_served", 1), ("timer_late_max_us", 300), ("fed_adapter_parameters", 4096)],
                                             sent: 1, bytes: 100), incarnation: 2)
        #expect(second.counters.map(\.value) == [6, 900, 4096])
        #expect(second.linkStats.first.map { [$0.sent, $0.delivered, $0.bytes] } == [5, 5, 500])
        // A late batch of the old incarnation replaces its own total only.
        let late = totals.totals(of: batch([("requests_served", 7)], sent: 4, bytes: 400), incarnation: 1)
        #expect(late.counters.map(\.value) == [8])
    }
}
