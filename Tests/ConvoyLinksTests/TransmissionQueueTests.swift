import ConvoyLinks
import Testing

@Suite struct TransmissionQueueTests {
    @Test func idleResourceStartsAtArrival() {
        var queue = TransmissionQueue()
        let slot = queue.transmit(arrival: 5, duration: 0.5)
        #expect(slot.start == 5)
        #expect(slot.finish == 5.5)
        #expect(queue.busyUntil == 5.5)
    }

    @Test func backToBackMessagesQueueInOrder() {
        var queue = TransmissionQueue()
        let first = queue.transmit(arrival: 1, duration: 2)
        let second = queue.transmit(arrival: 1.5, duration: 1)
        #expect(first == (start: 1, finish: 3))
        #expect(second.start == first.finish)
        #expect(second.finish == 4)
        #expect(queue.backlog(now: 2) == 2)
    }

    @Test func gapLeavesResourceIdle() {
        var queue = TransmissionQueue()
        queue.transmit(arrival: 0, duration: 1)
        let later = queue.transmit(arrival: 10, duration: 1)
        #expect(later == (start: 10, finish: 11))
        #expect(queue.backlog(now: 12) == 0)
    }
}
