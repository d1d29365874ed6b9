import ConvoyCore

/// Federated analytics (the paper's Section IV.A), as pure rules: a query about the road that
/// each vehicle answers from its own trajectory, the aggregation of the answers, optional Laplace
/// noise for differential privacy, and the error against the ground truth the whole trace gives.
/// Not yet carried over the network by the nodes (README, "Not yet").
///
/// The query: for each square road cell of `cellSize` metres, how many vehicles were in it during
/// `window`, and their mean speed there. A vehicle samples its own position every `step` seconds
/// of the window; it counts once in each cell it visited, with the mean of its speeds there
/// (clipped to `maxSpeed`, which bounds what one vehicle can change).
public struct RoadCellQuery: Sendable, Equatable {
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

    public struct Cell: Sendable, Hashable, Comparable {
        public var x: Int
        public var y: Int
        public static func < (a: Cell, b: Cell) -> Bool { (a.x, a.y) < (b.x, b.y) }
    }

    /// One cell's figures: vehicles counted and the sum of their mean speeds.
    public struct Tally: Sendable, Equatable {
        public var vehicles: Double
        public var speedSum: Double
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

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
