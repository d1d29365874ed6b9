import ConvoyCore
import Testing
@testable import ConvoyReasoning

/// Federated analytics on road cells: local answers from a vehicle's own positions, their sum,
/// Laplace noise and its error against the truth.
@Suite struct FederatedAnalyticsTests {
    let query = RoadCellQuery(cellSize: 100, window: 0..<10, step: 1, maxSpeed: 40)

    /// A vehicle at constant speed along the x axis from `x0`.
    func answer(x0: Double, speed: Double, present: Range<Double> = 0..<100) -> [RoadCellQuery.Cell: RoadCellQuery.Tally] {
        query.localAnswer(position: { t in present.contains(t) ? Position(x: x0 + speed * t, y: 50) : nil }, speed: { _ in speed })
    }

    @Test func aVehicleCountsOnceInEachCellItVisitedWithItsMeanSpeed() {
        // 15 m/s from x = 60: t 0…2 in cell 0 (60, 75, 90), t 3…9 in cell 1 (105 … 195).
        let local = answer(x0: 60, speed: 15)
        #expect(local == [RoadCellQuery.Cell(x: 0, y: 0): .init(vehicles: 1, speedSum: 15),
                          RoadCellQuery.Cell(x: 1, y: 0): .init(vehicles: 1, speedSum: 15)])
        // Absent during the window: no answer. A speed above the clip counts as the clip.
        #expect(answer(x0: 0, speed: 5, present: 20..<30).isEmpty)
        #expect(answer(x0: 0, speed: 90).values.allSatisfy { $0.speedSum == 40 })
    }

    @Test func theAggregateOfTheAnswersIsTheTruthWithoutNoise() {
        let answers = [answer(x0: 60, speed: 15), answer(x0: 10, speed: 5), answer(x0: 120, speed: 8)]
        let total = RoadCellQuery.aggregate(answers)
        let cell0 = RoadCellQuery.Cell(x: 0, y: 0), cell1 = RoadCellQuery.Cell(x: 1, y: 0)
        #expect(total[cell0]?.vehicles == 2 && total[cell0]?.meanSpeed == 10)
        #expect(total[cell1]?.vehicles == 2 && total[cell1]?.meanSpeed == 11.5)
        let error = RoadCellQuery.error(of: total, against: total)
        #expect(error.count == 0 && error.speed == 0)
    }

    @Test func noiseCostsErrorThatShrinksWithEpsilon() {
        // 50 vehicles spread along the road: many cells, many vehicles each.
        let answers = (0..<50).map { answer(x0: Double($0) * 37, speed: Double(5 + $0 % 20)) }
        let truth = RoadCellQuery.aggregate(answers)
        func meanError(_ epsilon: Double) -> Double {
            var rng = SeededGenerator(seed: 11, label: "dp")
            var sum = 0.0
            for _ in 0..<200 {
                let noisy = RoadCellQuery.aggregate(answers.map { query.noised($0, epsilon: epsilon, rng: &rng) })
                sum += RoadCellQuery.error(of: noisy, against: truth).count
            }
            return sum / 200
        }
        let loose = meanError(0.5), tight = meanError(5)
        #expect(loose > 4 * tight, "ε = 0.5: \(loose), ε = 5: \(tight)")
        #expect(tight > 0)
    }

    @Test func laplaceDrawsHaveTheirScale() {
        var rng = SeededGenerator(seed: 3, label: "laplace")
        let draws = (0..<20_000).map { _ in RoadCellQuery.laplace(scale: 2, rng: &rng) }
        let meanAbs = draws.map(abs).reduce(0, +) / Double(draws.count)
        #expect(abs(meanAbs - 2) < 0.1, "E|X| = scale for a Laplace: \(meanAbs)")
        #expect(abs(draws.reduce(0, +) / Double(draws.count)) < 0.1)
    }
}

/// The aggregator's rules and when a vehicle answers.
@Suite struct AnalyticsAggregatorTests {
    let config = AnalyticsConfig(query: RoadCellQuery(cellSize: 100, window: 10..<50), aggregator: "edge-1", grace: 5)
    let cell = RoadCellQuery.Cell(x: 0, y: 0)

    @Test func oneAnswerPerVehicleSummedWhenDue() {
        var agg = AnalyticsAggregator(config: config)
        #expect(agg.dueAt == 55)
        #expect(agg.receive(vehicle: "a", answer: [cell: .init(vehicles: 1, speedSum: 10)]) == .added)
        #expect(agg.receive(vehicle: "a", answer: [cell: .init(vehicles: 1, speedSum: 99)]) == .duplicate, "a re-send counts once")
        #expect(agg.receive(vehicle: "b", answer: [cell: .init(vehicles: 1, speedSum: 20)]) == .added)
        var rng = SeededGenerator(seed: 1)
        #expect(agg.estimate(rng: &rng) == [cell: .init(vehicles: 2, speedSum: 30)])
        #expect(agg.receive(vehicle: "c", answer: [:]) == .late)
    }

    @Test func noiseOnlyWithEpsilon() {
        var private_ = AnalyticsAggregator(config: AnalyticsConfig(query: config.query, aggregator: "edge-1", epsilon: 0.5))
        _ = private_.receive(vehicle: "a", answer: [cell: .init(vehicles: 1, speedSum: 10)])
        var rng = SeededGenerator(seed: 1)
        #expect(private_.estimate(rng: &rng)[cell] != .init(vehicles: 1, speedSum: 10))
    }

    @Test func aVehicleAnswersAtTheWindowsEndOrBeforeItLeaves() {
        #expect(config.sendTime(firstSample: 0, lastSample: 100) == 50)
        #expect(config.sendTime(firstSample: 0, lastSample: 30) == 28, "2 s before its last sample")
        #expect(config.sendTime(firstSample: 29, lastSample: 30) == 29, "not before it appears")
        #expect(config.sendTime(firstSample: 60, lastSample: 90) == nil, "after the window")
        #expect(config.sendTime(firstSample: 0, lastSample: 9) == nil, "before the window")
    }

    @Test func theTruthSumsEveryTrajectory() {
        let query = config.query
        let a = (position: { (t: Double) in Position(x: 10 * t, y: 0) as Position? }, speed: { (_: Double) in 10.0 })
        let b = (position: { (t: Double) in t < 20 ? Position(x: 50, y: 50) as Position? : nil }, speed: { (_: Double) in 0.0 })
        let truth = config.truth(of: [a, b])
        #expect(truth.vehicles == 2)
        #expect(truth.cells == RoadCellQuery.aggregate([query.localAnswer(position: a.position, speed: a.speed),
                                                         query.localAnswer(position: b.position, speed: b.speed)]))
        // b parked in cell (0, 0); a drove through cells 1 to 4.
        #expect(truth.cells[cell] == .init(vehicles: 1, speedSum: 0))
        #expect(truth.cells[RoadCellQuery.Cell(x: 1, y: 0)] == .init(vehicles: 1, speedSum: 10))
    }
}
