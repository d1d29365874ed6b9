import ConvoyCore

/// What and how often a vehicle asks (scenario `workload:`).
public struct WorkloadSpec: Sendable, Equatable, Codable {
    public enum Arrival: String, Sendable, Codable { case poisson, periodic }
    public var arrival: Arrival
    /// Mean seconds between a vehicle's requests.
    public var meanInterval: Double
    public var model: String
    public var inputTokens: Int
    public var outputTokens: Int
    /// Seconds from creation to deadline.
    public var deadline: Double
    public var payloadBytes: Int
    public var resultBytes: Int

    public init(arrival: Arrival = .poisson, meanInterval: Double = 2, model: String = "llama-3-8b", inputTokens: Int = 256,
                outputTokens: Int = 32, deadline: Double = 5, payloadBytes: Int = 20_000, resultBytes: Int = 2_000) {
        self.arrival = arrival
        self.meanInterval = meanInterval
        self.model = model
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.deadline = deadline
        self.payloadBytes = payloadBytes
        self.resultBytes = resultBytes
    }

    /// Emulated seconds a vehicle lets its open requests finish when the run ends.
    public var drainTime: Double { min(deadline, 5) }

    /// Seconds until the next request.
    public func nextInterval(using rng: inout SeededGenerator) -> Double {
        switch arrival {
        case .poisson: rng.exponential(mean: meanInterval)
        case .periodic: meanInterval
        }
    }
}
