/// The emulated links, as named in the `link_stats` and `link_samples` tables.
public enum LinkName: String, Sendable, Hashable, Codable, CaseIterable {
    case cellularUp = "cellular-up"
    case cellularDown = "cellular-down"
    case macroUp = "macro-up"
    case macroDown = "macro-down"
    case backhaul
    case wan
    case v2v
    case rsuBeacon = "rsu-beacon"
}

/// How an attempt ended (`attempts.outcome`).
public enum AttemptOutcome: String, Sendable, Hashable, Codable, CaseIterable {
    /// Sent, no answer yet (the row's state until the attempt ends).
    case pending
    /// A completed answer arrived.
    case replied
    /// The server was full.
    case rejected
    /// The server could not serve it (detail says why).
    case failed
    /// Its target was declared dead.
    case targetDead = "target-dead"
    /// The vehicle left its target's range.
    case outOfRange = "out-of-range"
    /// No answer by its reply-by.
    case timeout
    /// The request's deadline passed with the attempt in flight.
    case deadline
    /// Another attempt of the request answered first.
    case cancelled
    /// A neighbour's shared result answered the request.
    case superseded
    /// The vehicle stopped (run ended, vehicle left).
    case abandoned

    /// Outcomes that mean the attempt's target went away (for failover statistics).
    public static let targetLost: Set<AttemptOutcome> = [.targetDead, .outOfRange, .timeout]
}

/// Why a vehicle stops, and the reason recorded on the requests it leaves open.
public enum EndReason: String, Sendable, Hashable, Codable, CaseIterable {
    /// The run ended (SIGTERM from the launcher).
    case runEnded = "run-ended"
    /// The vehicle reached the end of its trajectory.
    case vehicleLeft = "vehicle-left"
}

/// Ways to fault a node (scenario `faults:`, `convoy fail --mode`).
public enum FaultMode: String, Sendable, Codable, CaseIterable {
    /// SIGKILL; restarted (new incarnation) after the duration.
    case crash
    /// SIGSTOP, then SIGCONT after the duration.
    case hang
    /// The node drops everything it would send or receive (its records still reach the launcher).
    case partition
    /// Extra loss and latency on everything the node sends or receives.
    case degrade
    /// The node's real model server is gone (as if killed): every call in flight fails, and the
    /// node admits nothing for its compute until the fault ends (it still relays).
    case backendDown = "backend-down"
}

/// How a degraded node's links get worse (scenario `loss:` and `latency_ms:` of a degrade fault).
public struct Degradation: Sendable, Equatable, Codable {
    /// Probability that a message is lost, on top of the link model.
    public var loss: Double
    /// Seconds added to every message's delivery.
    public var latency: Double

    public init(loss: Double, latency: Double) {
        self.loss = loss
        self.latency = latency
    }

    /// Defaults for `degrade` without parameters: 20 % loss, 50 ms extra latency.
    public static let standard = Degradation(loss: 0.2, latency: 0.05)
}
