import ConvoyReasoning
import Testing

/// `LivenessTracker.Transition` has no public initializer: compare through this mirror.
struct T: Equatable, CustomStringConvertible {
    var peer: String
    var from: PeerState
    var to: PeerState
    var at: Double
    var description: String { "\(peer): \(from) → \(to) at \(at)" }
}

extension LivenessTracker.Transition {
    var plain: T { T(peer: peer, from: from, to: to, at: at) }
}

@Suite struct LivenessTests {
    /// Suspect after more than 1 s of silence, dead after more than 2 s (binary-exact values).
    let config = LivenessConfig(beaconInterval: 0.5, suspectAfter: 2, deadAfter: 4)

    @Test func defaults() {
        let d = LivenessConfig()
        #expect(d.beaconInterval == 0.1 && d.suspectAfter == 2 && d.deadAfter == 3)
    }

    @Test func aliveThenSuspectThenDeadAtTheExactBoundaries() {
        var tracker = LivenessTracker(config: config)
        #expect(tracker.state(of: "a") == nil && !tracker.isAlive("a"))
        #expect(tracker.heard("a", at: 10)?.plain == nil, "a first beacon is not a transition")
        #expect(tracker.state(of: "a") == .alive && tracker.isAlive("a") && tracker.lastHeard("a") == 10)
        #expect(tracker.check(now: 10.5).map(\.plain) == [])
        #expect(tracker.check(now: 11.0).map(\.plain) == [], "exactly suspectAfter intervals of silence is still alive")
        #expect(tracker.state(of: "a") == .alive)
        #expect(tracker.check(now: 11.0.nextUp).map(\.plain) == [T(peer: "a", from: .alive, to: .suspect, at: 11.0.nextUp)])
        #expect(tracker.state(of: "a") == .suspect && !tracker.isAlive("a"))
        #expect(tracker.check(now: 11.5).map(\.plain) == [], "no repeated transition")
        #expect(tracker.check(now: 12.0).map(\.plain) == [], "exactly deadAfter intervals of silence is still suspect")
        #expect(tracker.state(of: "a") == .suspect)
        #expect(tracker.check(now: 12.0.nextUp).map(\.plain) == [T(peer: "a", from: .suspect, to: .dead, at: 12.0.nextUp)])
        #expect(tracker.state(of: "a") == .dead)
        #expect(tracker.check(now: 100).map(\.plain) == [])
        #expect(tracker.heard("a", at: 100.25)?.plain == T(peer: "a", from: .dead, to: .alive, at: 100.25))
        #expect(tracker.state(of: "a") == .alive && tracker.lastHeard("a") == 100.25)
        #expect(tracker.heard("a", at: 100.5)?.plain == nil)
    }

    @Test func longSilenceGoesStraightToDead() {
        var tracker = LivenessTracker(config: config)
        tracker.heard("a", at: 0)
        #expect(tracker.check(now: 5).map(\.plain) == [T(peer: "a", from: .alive, to: .dead, at: 5)])
    }

    @Test func suspectHeardAgainIsAlive() {
        var tracker = LivenessTracker(config: config)
        tracker.heard("a", at: 0)
        _ = tracker.check(now: 1.5)
        #expect(tracker.heard("a", at: 1.6)?.plain == T(peer: "a", from: .suspect, to: .alive, at: 1.6))
        // The silence restarts from the new beacon.
        #expect(tracker.check(now: 2.6).map(\.plain) == [])
        #expect(tracker.check(now: 2.7).map(\.to) == [.suspect])
    }

    @Test func newIncarnationIsReportedAsARestart() {
        var tracker = LivenessTracker(config: config)
        #expect(tracker.heard("rsu-1", incarnation: 1, at: 0)?.plain == nil)
        #expect(tracker.heard("rsu-1", incarnation: 1, at: 0.5)?.plain == nil)
        #expect(tracker.heard("rsu-1", incarnation: 2, at: 0.75)?.plain == T(peer: "rsu-1", from: .dead, to: .alive, at: 0.75))
        #expect(tracker.heard("rsu-1", incarnation: 2, at: 1.0)?.plain == nil, "the new incarnation is remembered")
        // A restart noticed while dead is one transition, not two.
        _ = tracker.check(now: 10)
        #expect(tracker.state(of: "rsu-1") == .dead)
        #expect(tracker.heard("rsu-1", incarnation: 3, at: 10.5)?.plain == T(peer: "rsu-1", from: .dead, to: .alive, at: 10.5))
        #expect(tracker.heard("rsu-1", incarnation: 3, at: 11)?.plain == nil)
    }

    @Test func forgetRequiresHearingAgain() {
        var tracker = LivenessTracker(config: config)
        tracker.heard("a", at: 0)
        tracker.heard("b", at: 0)
        tracker.forget("a")
        #expect(tracker.state(of: "a") == nil && !tracker.isAlive("a") && tracker.lastHeard("a") == nil)
        #expect(tracker.isAlive("b"))
        // A forgotten peer is never reported by check.
        #expect(tracker.check(now: 50).map(\.peer) == ["b"])
        #expect(tracker.heard("a", at: 60)?.plain == nil)
        #expect(tracker.isAlive("a"))
        tracker.forget("never-heard")
    }

    @Test func outOfOrderBeaconDoesNotMoveLastHeardBack() {
        var tracker = LivenessTracker(config: config)
        tracker.heard("a", at: 5)
        tracker.heard("a", at: 4)
        #expect(tracker.lastHeard("a") == 5)
        #expect(tracker.check(now: 6).map(\.plain) == [])
    }

    @Test func checkReportsSeveralPeersSortedById() {
        var tracker = LivenessTracker(config: config)
        for peer in ["c", "a", "b"] { tracker.heard(peer, at: 0) }
        tracker.heard("d", at: 0.75)
        let transitions = tracker.check(now: 1.5)
        #expect(transitions.map(\.peer) == ["a", "b", "c"])
        #expect(transitions.allSatisfy { $0.from == .alive && $0.to == .suspect && $0.at == 1.5 })
        #expect(tracker.isAlive("d"))
    }

    /// Beacons every 0.5 s in some windows and silence in others, checked every 0.25 s (check first, then the
    /// beacon of that instant): exactly the expected transitions, none spurious, and a steady peer never moves.
    @Test func flappingPeerProducesExactlyTheExpectedTransitions() {
        var tracker = LivenessTracker(config: config)
        // (from, through) windows with beacons, and the incarnation used.
        let on: [(ClosedRange<Double>, UInt32)] = [(0...2, 0), (3.5...5, 0), (8...9, 0), (10...12, 0), (12.5...14, 1)]
        var transitions: [T] = []
        for step in 0...56 {
            let now = Double(step) * 0.25
            transitions += tracker.check(now: now).map(\.plain)
            if now.truncatingRemainder(dividingBy: 0.5) == 0 {
                tracker.heard("steady", at: now)
                if let (_, incarnation) = on.first(where: { $0.0.contains(now) }),
                   let change = tracker.heard("flappy", incarnation: incarnation, at: now) {
                    transitions.append(change.plain)
                }
            }
        }
        #expect(transitions == [
            T(peer: "flappy", from: .alive, to: .suspect, at: 3.25),   // 1.25 s after the beacon at 2
            T(peer: "flappy", from: .suspect, to: .alive, at: 3.5),
            T(peer: "flappy", from: .alive, to: .suspect, at: 6.25),   // 1.25 s after 5
            T(peer: "flappy", from: .suspect, to: .dead, at: 7.25),    // 2.25 s after 5 (at 7.0: exactly 2 s, still suspect)
            T(peer: "flappy", from: .dead, to: .alive, at: 8),
            // 9 → 10: exactly 1 s of silence, no transition.
            T(peer: "flappy", from: .dead, to: .alive, at: 12.5),      // restarted with a new incarnation
        ])
        #expect(tracker.state(of: "steady") == .alive && tracker.state(of: "flappy") == .alive)
    }
}
