import ConvoyCore

/// Federated analytics (the paper's Section IV.A), as pure rules: a query about the road that
/// each vehicle answers from its own trajectory, the aggregation of the answers, optional Laplace
/// noise for differential privacy, and the error against the ground truth the whole trace gives.
/// The nodes carry it (scenario `analytics:`): vehicles send their answers over their cell, an
/// `AnalyticsAggregator` at an RSU, edge server or the cloud sums them.
///
/// The query: for each square road cell of `cellSize` metres, how many vehicles were in it during
/// `window`, and their mean speed there. A vehicle samples its own position every `step` seconds
/// of the window; it counts once in each cell it visited, with the mean of its speeds there
/// (clipped to `maxSpeed`, which bounds what one vehicle can change).
public struct RoadCellQuery: Sendable, Equatable, Codable {
    public var cellSize: Double
    public var window: Range<Double>
    public var step: Double
    public var maxSpeed: Double

    public init(cellSize: Double = 200, window: Range<Double>, step: Double = 1, maxSpeed: Double = 70) {
        precondition(cellSize > 0 && step > 0 && maxSpeed > 0)
        self.cellSize = cellSize
        self.window = window
        self.step = step
        self.maxSpeed = maxSpeed
    }

    public struct Cell: Sendable, Hashable, Comparable, Codable {
        public var x: Int
        public var y: Int
        public init(x: Int, y: Int) {
            self.x = x
            self.y = y
        }
        public static func < (a: Cell, b: Cell) -> Bool { (a.x, a.y) < (b.x, b.y) }
    }

    /// One cell's figures: vehicles counted and the sum of their mean speeds.
    public struct Tally: Sendable, Equatable {
        public var vehicles: Double
        public var speedSum: Double
        public init(vehicles: Double, speedSum: Double) {
            self.vehicles = vehicles
            self.speedSum = speedSum
        }
        public var meanSpeed: Double? { vehicles > 0 ? speedSum / vehicles : nil }
    }

    public func cell(of p: Position) -> Cell {
        Cell(x: Int((p.x / cellSize).rounded(.down)), y: Int((p.y / cellSize).rounded(.down)))
    }

    /// A vehicle's own answer, from where it was (`position(t)`, nil when absent) and how fast
    /// (`speed(t)`).
    public func localAnswer(position: (Double) -> Position?, speed: (Double) -> Double) -> [Cell: Tally] {
        var speeds: [Cell: (sum: Double, n: Int)] = [:]
        var t = window.lowerBound
        while t < window.upperBound {
            if let p = position(t) {
                let s = min(max(0, speed(t)), maxSpeed)
                speeds[cell(of: p), default: (0, 0)].sum += s
                speeds[cell(of: p), default: (0, 0)].n += 1
            }
            t += step
        }
        return speeds.mapValues { Tally(vehicles: 1, speedSum: $0.sum / Double($0.n)) }
    }

    /// The sum of the vehicles' answers (what an RSU or edge server computes).
    public static func aggregate(_ answers: [[Cell: Tally]]) -> [Cell: Tally] {
        var total: [Cell: Tally] = [:]
        for answer in answers {
            for (cell, tally) in answer {
                total[cell, default: Tally(vehicles: 0, speedSum: 0)].vehicles += tally.vehicles
                total[cell, default: Tally(vehicles: 0, speedSum: 0)].speedSum += tally.speedSum
            }
        }
        return total
    }

    /// `answer` with Laplace noise of scale 1/ε on each count and `maxSpeed`/ε on each speed sum,
    /// per cell (one vehicle changes a cell's count by at most 1 and its speed sum by at most
    /// `maxSpeed`): ε-differential privacy for each cell a vehicle reports. Drawn from `rng`.
    public func noised(_ answer: [Cell: Tally], epsilon: Double, rng: inout SeededGenerator) -> [Cell: Tally] {
        precondition(epsilon > 0)
        var out: [Cell: Tally] = [:]
        for cell in answer.keys.sorted() {
            let tally = answer[cell]!
            out[cell] = Tally(vehicles: tally.vehicles + Self.laplace(scale: 1 / epsilon, rng: &rng),
                              speedSum: tally.speedSum + Self.laplace(scale: maxSpeed / epsilon, rng: &rng))
        }
        return out
    }

    /// Mean absolute error of the vehicle counts and of the mean speeds (cells with a true mean
    /// and an estimated count of at least one), against `truth`.
    public static func error(of estimate: [Cell: Tally], against truth: [Cell: Tally]) -> (count: Double, speed: Double?) {
        guard !truth.isEmpty else { return (0, nil) }
        var countError = 0.0, speedError = 0.0, speedCells = 0
        for (cell, real) in truth {
            let guess = estimate[cell] ?? Tally(vehicles: 0, speedSum: 0)
            countError += abs(guess.vehicles - real.vehicles)
            if let mean = real.meanSpeed, guess.vehicles >= 1, let estimated = guess.meanSpeed {
                speedError += abs(estimated - mean)
                speedCells += 1
            }
        }
        return (countError / Double(truth.count), speedCells > 0 ? speedError / Double(speedCells) : nil)
    }

    /// A draw of the Laplace distribution with the given scale (inverse CDF).
    static func laplace(scale: Double, rng: inout SeededGenerator) -> Double {
        let u = rng.unit() - 0.5
        let magnitude = -scale * log(max(1e-300, 1 - 2 * abs(u)))
        return u < 0 ? -magnitude : magnitude
    }
}

/// The scenario's federated analytics (`analytics:`): the query, the node that aggregates, and
/// the privacy budget.
public struct AnalyticsConfig: Sendable, Equatable, Codable {
    public var query: RoadCellQuery
    /// The RSU, edge server or cloud that sums the vehicles' answers.
    public var aggregator: String
    /// Laplace noise on the aggregate (central differential privacy at the aggregator); nil: none.
    public var epsilon: Double?
    /// Seconds after the window's end at which the aggregator records its estimate (answers
    /// arriving later are counted, not used).
    public var grace: Double

    public init(query: RoadCellQuery, aggregator: String, epsilon: Double? = nil, grace: Double = 5) {
        self.query = query
        self.aggregator = aggregator
        self.epsilon = epsilon
        self.grace = grace
    }

    /// When a vehicle present until `lastSample` sends its answer: at the window's end, or
    /// `leadTime` before it leaves the trace (its answer still covers its whole trip in the window:
    /// the trace says where it will be); nil if it is not on the road during the window.
    public func sendTime(firstSample: Double, lastSample: Double) -> Double? {
        guard firstSample < query.window.upperBound, lastSample >= query.window.lowerBound else { return nil }
        return max(firstSample, min(query.window.upperBound, lastSample - Self.leadTime))
    }

    /// Seconds before leaving the trace at which a vehicle sends its answer (time for re-sends).
    public static let leadTime = 2.0

    /// The ground truth: every vehicle's answer from its whole trajectory, summed (no noise), and
    /// how many vehicles answered.
    public func truth(of trajectories: [(position: (Double) -> Position?, speed: (Double) -> Double)])
        -> (cells: [RoadCellQuery.Cell: RoadCellQuery.Tally], vehicles: Int) {
        let answers = trajectories.map { query.localAnswer(position: $0.position, speed: $0.speed) }.filter { !$0.isEmpty }
        return (RoadCellQuery.aggregate(answers), answers.count)
    }
}

/// What the aggregator does with the answers: one per vehicle (a re-send replaces nothing), summed
/// when the estimate is due, noised if the scenario gives ε. Pure.
public struct AnalyticsAggregator: Sendable {
    public let config: AnalyticsConfig
    public private(set) var answers: [String: [RoadCellQuery.Cell: RoadCellQuery.Tally]] = [:]
    /// Whether the estimate was recorded (answers after it are late).
    public private(set) var recorded = false

    public init(config: AnalyticsConfig) { self.config = config }

    public var dueAt: Double { config.query.window.upperBound + config.grace }

    public enum Receipt: Sendable, Equatable { case added, duplicate, late }

    /// A vehicle's answer arrived.
    public mutating func receive(vehicle: String, answer: [RoadCellQuery.Cell: RoadCellQuery.Tally]) -> Receipt {
        guard answers[vehicle] == nil else { return .duplicate }
        guard !recorded else { return .late }
        answers[vehicle] = answer
        return .added
    }

    /// The estimate (sum of the answers, noised with ε from `rng` if the scenario gives one); marks it recorded.
    public mutating func estimate(rng: inout SeededGenerator) -> [RoadCellQuery.Cell: RoadCellQuery.Tally] {
        recorded = true
        let sum = RoadCellQuery.aggregate(answers.keys.sorted().map { answers[$0]! })
        guard let epsilon = config.epsilon else { return sum }
        return config.query.noised(sum, epsilon: epsilon, rng: &rng)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
