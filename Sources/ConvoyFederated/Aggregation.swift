import Foundation

/// One client's update as the aggregator received it.
public struct ClientUpdate: Sendable, Equatable {
    public var vehicle: String
    public var adapter: Adapter
    /// Local training samples (FedAvg's weight).
    public var samples: Int
    /// The global version the client trained from (asynchronous schemes).
    public var baseVersion: Int

    public init(vehicle: String, adapter: Adapter, samples: Int, baseVersion: Int = 0) {
        self.vehicle = vehicle
        self.adapter = adapter
        self.samples = samples
        self.baseVersion = baseVersion
    }
}

/// The aggregation rules, as pure functions on adapters.
public enum Aggregation {
    /// FedAvg (McMahan et al.): the mean of the clients' adapters weighted by their sample counts
    /// (equal weights when every count is 0). nil for no updates.
    public static func fedAvg(_ updates: [(adapter: Adapter, weight: Double)]) -> Adapter? {
        guard let first = updates.first else { return nil }
        let total = updates.reduce(0) { $0 + $1.weight }
        let equal = !(total > 0)
        var sum = [Double](repeating: 0, count: first.adapter.count)
        for u in updates {
            precondition(u.adapter.count == sum.count, "adapters of different sizes")
            let w = equal ? 1 / Double(updates.count) : u.weight / total
            for i in sum.indices { sum[i] += w * Double(u.adapter.values[i]) }
        }
        return Adapter(sum.map { Float($0) })
    }

    public static func fedAvg(clients updates: [ClientUpdate]) -> Adapter? {
        fedAvg(updates.map { ($0.adapter, Double($0.samples)) })
    }

    /// FedAsync's polynomial staleness weight (Xie et al. 2019): `α·(1+τ)^−a`.
    public static func stalenessWeight(alpha: Double, exponent a: Double, staleness τ: Int) -> Double {
        alpha * pow(1 + Double(max(0, τ)), -a)
    }

    /// FedAsync's update: `x ← (1 − w)·x + w·x_client` with the staleness weight `w`.
    public static func fedAsync(global: Adapter, update: Adapter, alpha: Double, exponent: Double, staleness: Int) -> Adapter {
        let w = Float(stalenessWeight(alpha: alpha, exponent: exponent, staleness: staleness))
        return global.adding(update.minus(global), scaledBy: w)
    }
}

/// FedBuff (Nguyen et al. 2022): the server buffers the clients' deltas (update − the global they
/// started from), each weighted by its staleness, and applies their mean, scaled by the server
/// learning rate, once `size` of them are in.
public struct UpdateBuffer: Sendable {
    public let size: Int
    public let serverRate: Double
    public private(set) var deltas: [(delta: Adapter, weight: Double)] = []

    public init(size: Int, serverRate: Double = 1) {
        precondition(size >= 1, "a buffer holds at least one update")
        self.size = size
        self.serverRate = serverRate
    }

    /// Adds a delta; returns the new global when the buffer is full (and empties it).
    public mutating func add(delta: Adapter, weight: Double, to global: Adapter) -> Adapter? {
        deltas.append((delta, weight))
        guard deltas.count >= size else { return nil }
        defer { deltas = [] }
        var step = Adapter(zeros: global.count)
        for d in deltas { step = step.adding(d.delta, scaledBy: Float(d.weight / Double(deltas.count))) }
        return global.adding(step, scaledBy: Float(serverRate))
    }
}

