import ConvoyCore

/// Parameters of a wired link: the backhaul RSU ↔ edge, or the WAN edge ↔ cloud.
///
/// | field | unit | backhaul default | WAN default | meaning |
/// |---|---|---|---|---|
/// | `latency` | s | 0.002 | 0.030 | one-way base latency (propagation and switching) |
/// | `jitter` | s | 0.0002 | 0.003 | each message's latency varies uniformly in `latency ± jitter` (never below 0) |
/// | `bandwidthBitsPerSecond` | bit/s | 1e9 | 1e9 | serialisation rate |
/// | `loss` | probability | 0 | 0 | chance that a message is lost |
///
/// Decoding requires `latency` and `bandwidthBitsPerSecond`; `jitter` and `loss` default to 0.
/// Out-of-range values throw `DecodingError.dataCorrupted`.
public struct WiredParameters: Sendable, Equatable, Codable {
    public var latency: Double
    public var jitter: Double
    public var bandwidthBitsPerSecond: Double
    public var loss: Double

    public init(latency: Double, jitter: Double = 0, bandwidthBitsPerSecond: Double, loss: Double = 0) {
        self.latency = latency
        self.jitter = jitter
        self.bandwidthBitsPerSecond = bandwidthBitsPerSecond
        self.loss = loss
    }

    /// RSU ↔ edge backhaul: 2 ms ± 0.2 ms, 1 Gbit/s, no loss.
    public static let backhaulDefault = WiredParameters(latency: 0.002, jitter: 0.0002, bandwidthBitsPerSecond: 1e9, loss: 0)
    /// Edge ↔ cloud WAN: 30 ms ± 3 ms, 1 Gbit/s, no loss.
    public static let wanDefault = WiredParameters(latency: 0.030, jitter: 0.003, bandwidthBitsPerSecond: 1e9, loss: 0)

    /// What is wrong with these parameters, or an empty list.
    public var problems: [String] {
        var problems: [String] = []
        if !(latency >= 0 && latency.isFinite) { problems.append("latency must be a non-negative number of seconds") }
        if !(jitter >= 0 && jitter.isFinite) { problems.append("jitter must be a non-negative number of seconds") }
        if !(bandwidthBitsPerSecond > 0) { problems.append("bandwidthBitsPerSecond must be positive") }
        if !(loss >= 0 && loss <= 1) { problems.append("loss must be a probability in [0, 1]") }
        return problems
    }

    private enum CodingKeys: String, CodingKey {
        case latency, jitter, bandwidthBitsPerSecond, loss
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            latency: try c.decode(Double.self, forKey: .latency),
            jitter: try c.decode(.jitter, default: 0),
            bandwidthBitsPerSecond: try c.decode(Double.self, forKey: .bandwidthBitsPerSecond),
            loss: try c.decode(.loss, default: 0)
        )
        try c.require(latency >= 0 && latency.isFinite, .latency, "expected a non-negative duration in seconds")
        try c.require(jitter >= 0 && jitter.isFinite, .jitter, "expected a non-negative duration in seconds")
        try c.require(bandwidthBitsPerSecond > 0, .bandwidthBitsPerSecond, "expected a positive rate in bit/s")
        try c.require(loss >= 0 && loss <= 1, .loss, "expected a probability in [0, 1]")
    }
}

/// One direction of a wired link, with its FIFO transmission queue.
///
/// A message handed over at `now` is serialised after the link's earlier messages:
/// `finish = max(now, busyUntil) + bits / bandwidth`; it is delivered at
/// `finish + max(0, latency + J)`, `J` uniform in `[−jitter, +jitter]`. Jitter is drawn per message,
/// so with jitter larger than the spacing of messages they may be delivered out of order (as with
/// netem). The message is then lost with probability `loss` (it still occupied the link). Every
/// message consumes exactly two generator draws: jitter, then loss.
public struct WiredLink: Sendable {
    public var parameters: WiredParameters
    public private(set) var queue = TransmissionQueue()

    public init(parameters: WiredParameters) {
        precondition(parameters.problems.isEmpty, "invalid wired parameters: \(parameters.problems)")
        self.parameters = parameters
    }

    /// What happens to `bytes` handed to the link at `now`.
    public mutating func transmit(bytes: Int, now: Double, rng: inout SeededGenerator) -> LinkOutcome {
        let duration = bits(bytes) / parameters.bandwidthBitsPerSecond
        let finish = queue.transmit(arrival: now, duration: duration).finish
        let jitter = (2 * rng.unit() - 1) * parameters.jitter
        if rng.unit() < parameters.loss { return .lost }
        return .deliver(at: finish + max(0, parameters.latency + jitter))
    }

    /// Seconds a message handed over at `now` would wait before it starts.
    public func backlog(now: Double) -> Double { queue.backlog(now: now) }
}
