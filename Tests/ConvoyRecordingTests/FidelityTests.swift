import ConvoyRecording
import ConvoyWire
import Testing

/// A run's own fidelity: link error percentiles, timer lateness, the verdict and the speed to try.
@Suite struct FidelityTests {
    func errors(_ values: [Double], link: String = "cellular-up") -> [(link: String, ms: Double)] { values.map { (link, $0) } }

    @Test func heldWhenTheP99IsWithinTheBound() {
        let f = Fidelity(errors: errors(Array(repeating: 0.2, count: 99) + [0.9]), counters: [
            CounterRecord(nodeID: "veh1", name: "timers_fired", value: 1000), CounterRecord(nodeID: "veh1", name: "timers_late_over_1ms", value: 5),
            CounterRecord(nodeID: "veh1", name: "timer_late_max_us", value: 2500),
        ])
        #expect(f.deliveries == 100 && f.p50Ms == 0.2 && f.p99Ms == 0.2 && f.maxMs == 0.9, "nearest rank: the 99th of 100")
        #expect(!f.lost && f.suggestedSpeed(current: 1) == nil)
        #expect(f.timersFired == 1000 && f.timersLate == 5 && f.timerLateMaxMs == 2.5)
    }

    @Test func lostLinksSuggestASlowerSpeed() {
        // p99 4 ms at speed 1: a quarter of the speed; at 0.5 with p99 3 ms, 0.16 (two digits, rounded down).
        let slow = Fidelity(errors: errors(Array(repeating: 4, count: 100)) + errors([0.1], link: "v2v"), counters: [])
        #expect(slow.linksLost && slow.lost && slow.suggestedSpeed(current: 1) == 0.25)
        #expect(slow.links.map(\.link) == ["cellular-up", "v2v"])
        let slower = Fidelity(errors: errors(Array(repeating: 3, count: 100)), counters: [])
        #expect(slower.suggestedSpeed(current: 0.5) == 0.16)
    }

    @Test func lateTimersAloneLoseFidelity() {
        let f = Fidelity(errors: errors([0.1, 0.2]), counters: [
            CounterRecord(nodeID: "rsu-1", name: "timers_fired", value: 100), CounterRecord(nodeID: "rsu-1", name: "timers_late_over_1ms", value: 2),
            CounterRecord(nodeID: "veh1", name: "timer_late_max_us", value: 8000),
        ])
        #expect(f.timersLost && !f.linksLost && f.lost && f.timerP99AtLeastMs == 1)
        #expect(f.suggestedSpeed(current: 1) == 0.66, "the timers' p99 is over 1 ms: at least 1.5 ms assumed")
        let worse = Fidelity(errors: errors([0.1]), counters: [
            CounterRecord(nodeID: "rsu-1", name: "timers_fired", value: 100), CounterRecord(nodeID: "rsu-1", name: "timers_late_over_1ms", value: 9),
            CounterRecord(nodeID: "rsu-1", name: "timers_late_over_10ms", value: 3),
        ])
        #expect(worse.timerP99AtLeastMs == 10 && worse.suggestedSpeed(current: 1) == 0.1)
    }
}
