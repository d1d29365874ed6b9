import ConvoyWire
import Testing
@testable import ConvoyReasoning

@Suite("When the state machines next have something to do")
struct WakeTests {
    @Test func livenessNextTransitionIsTheEarliestThreshold() {
        var tracker = LivenessTracker(config: LivenessConfig(beaconInterval: 0.1, suspectAfter: 2, deadAfter: 3))
        #expect(tracker.nextTransition == nil)
        tracker.heard("a", at: 1.0)
        tracker.heard("b", at: 1.05)
        #expect(abs(tracker.nextTransition! - 1.2) < 1e-9)  // a turns suspect
        #expect(tracker.check(now: 1.2001).map(\.peer) == ["a"])
        #expect(abs(tracker.nextTransition! - 1.25) < 1e-9)  // b turns suspect before a turns dead (1.3)
        _ = tracker.check(now: 1.2501)
        #expect(abs(tracker.nextTransition! - 1.3) < 1e-9)
        _ = tracker.check(now: 1.36)
        #expect(tracker.nextTransition == nil)  // both dead: nothing more until heard again
    }

    @Test func ledgerNextDeadlineIsTheEarliestReplyByOrDeadline() {
        var ledger = RequestLedger(config: .init(attemptTimeout: 2.5, maxAttempts: 8, retryBackoff: 0.25))
        #expect(ledger.nextDeadline == nil)
        let spec = RequestSpec(requestID: "v/1", model: "llama-3-8b", inputTokens: 1, outputTokens: 1, payloadBytes: 1, deadline: 5)
        _ = ledger.open(spec, now: 10, candidates: [Route(.rsu, "rsu-1")])
        #expect(ledger.nextDeadline == 12.5)  // reply-by of attempt 1
        let late = RequestSpec(requestID: "v/2", model: "llama-3-8b", inputTokens: 1, outputTokens: 1, payloadBytes: 1, deadline: 1)
        _ = ledger.open(late, now: 11, candidates: [])  // waits for a path; its deadline is at 12
        #expect(ledger.nextDeadline == 12)
    }
}
