/// Liveness of peers from their beacons, with an injected clock.
///
/// A peer is alive while heard within `suspectAfter` beacon intervals, suspect after that, and
/// dead after `deadAfter` intervals of silence. Hearing a dead or suspect peer makes it alive
/// again (a restarted node, or a hang that ended).
public struct LivenessConfig: Sendable, Equatable, Codable {
    /// Seconds between beacons.
    public var beaconInterval: Double
    public var suspectAfter: Double
    public var deadAfter: Double

    public init(beaconInterval: Double = 0.1, suspectAfter: Double = 2, deadAfter: Double = 3) {
        self.beaconInterval = beaconInterval
        self.suspectAfter = suspectAfter
        self.deadAfter = deadAfter
    }
}

public enum PeerState: String, Sendable, Equatable {
    case alive, suspect, dead
}

public struct LivenessTracker: Sendable {
    public let config: LivenessConfig

    public struct Transition: Sendable, Equatable {
        public var peer: String
        public var from: PeerState
        public var to: PeerState
        public var at: Double
    }

    private struct Peer {
        var lastHeard: Double
        var state: PeerState
        var incarnation: UInt32
    }

    private var peers: [String: Peer] = [:]

    public init(config: LivenessConfig) { self.config = config }

    /// Records a beacon (or any message) from `peer`. Returns the transition if the peer was not
    /// alive before, or restarted (a new incarnation is reported as dead → alive).
    @discardableResult
    public mutating func heard(_ peer: String, incarnation: UInt32 = 0, at now: Double) -> Transition? {
        guard var p = peers[peer] else {
            peers[peer] = Peer(lastHeard: now, state: .alive, incarnation: incarnation)
            return nil
        }
        let previous = p.state
        let restarted = incarnation != p.incarnation
        p.lastHeard = max(p.lastHeard, now)
        p.state = .alive
        p.incarnation = incarnation
        peers[peer] = p
        if restarted && previous == .alive { return Transition(peer: peer, from: .dead, to: .alive, at: now) }
        return previous == .alive ? nil : Transition(peer: peer, from: previous, to: .alive, at: now)
    }

    /// Advances time: returns the peers that became suspect or dead.
    public mutating func check(now: Double) -> [Transition] {
        var out: [Transition] = []
        for (id, var p) in peers {
            let silent = now - p.lastHeard
            let next: PeerState =
                silent > config.deadAfter * config.beaconInterval ? .dead
                : silent > config.suspectAfter * config.beaconInterval ? .suspect : .alive
            if next != p.state && next != .alive {
                out.append(Transition(peer: id, from: p.state, to: next, at: now))
                p.state = next
                peers[id] = p
            }
        }
        return out.sorted { $0.peer < $1.peer }
    }

    /// The earliest instant at which `check(now:)` would report a transition, if any: lets a caller
    /// wake exactly then instead of polling.
    public var nextTransition: Double? {
        peers.values.compactMap { p -> Double? in
            switch p.state {
            case .alive: p.lastHeard + config.suspectAfter * config.beaconInterval
            case .suspect: p.lastHeard + config.deadAfter * config.beaconInterval
            case .dead: nil
            }
        }.min()
    }

    public func state(of peer: String) -> PeerState? { peers[peer]?.state }

    /// Alive peers only (never heard = not alive).
    public func isAlive(_ peer: String) -> Bool { peers[peer]?.state == .alive }

    /// Forgets a peer (e.g. left radio range): it must be heard again to count as alive.
    public mutating func forget(_ peer: String) { peers[peer] = nil }

    public func lastHeard(_ peer: String) -> Double? { peers[peer]?.lastHeard }
}
