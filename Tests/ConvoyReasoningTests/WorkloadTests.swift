import ConvoyCore
import ConvoyReasoning
import Testing

@Suite struct WorkloadTests {
    @Test func periodicIntervalIsExactlyTheMean() {
        let spec = WorkloadSpec(arrival: .periodic, meanInterval: 1.75)
        var rng = SeededGenerator(seed: 3)
        for _ in 0..<100 { #expect(spec.nextInterval(using: &rng) == 1.75) }
    }

    @Test func poissonIntervalsHaveTheMeanAndSpreadOfAnExponential() {
        let spec = WorkloadSpec(arrival: .poisson, meanInterval: 2)
        var rng = SeededGenerator(seed: 42, label: "vehicle-1")
        let n = 20_000
        var draws: [Double] = []
        draws.reserveCapacity(n)
        for _ in 0..<n { draws.append(spec.nextInterval(using: &rng)) }
        #expect(draws.allSatisfy { $0 >= 0 && $0.isFinite })
        let mean = draws.reduce(0, +) / Double(n)
        // Standard error 2/√20000 ≈ 0.014: 3 % is over 4 standard errors.
        #expect(abs(mean - 2) < 0.06, "mean \(mean)")
        let variance = draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n - 1)
        #expect(abs(variance.squareRoot() - 2) < 0.1, "standard deviation \(variance.squareRoot())")
        // Memorylessness, roughly: P(X > mean) = e^-1.
        let above = Double(draws.filter { $0 > 2 }.count) / Double(n)
        #expect(abs(above - 0.3679) < 0.015, "P(X > mean) = \(above)")
    }

    @Test func poissonIntervalsRepeatWithTheSeed() {
        let spec = WorkloadSpec(arrival: .poisson, meanInterval: 0.5)
        var a = SeededGenerator(seed: 9, label: "v"), b = SeededGenerator(seed: 9, label: "v"), c = SeededGenerator(seed: 10, label: "v")
        let sa = (0..<50).map { _ in spec.nextInterval(using: &a) }
        let sb = (0..<50).map { _ in spec.nextInterval(using: &b) }
        let sc = (0..<50).map { _ in spec.nextInterval(using: &c) }
        #expect(sa == sb)
        #expect(sa != sc)
    }

    @Test func defaultsAndDrainTime() {
        let spec = WorkloadSpec()
        #expect(spec.arrival == .poisson && spec.meanInterval == 2 && spec.tasks == [TaskSpec()])
        let task = spec.tasks[0]
        #expect(task.name == "default" && task.model == "llama-3-8b" && task.inputTokens == 256 && task.outputTokens == 32)
        #expect(task.deadline == 5 && !task.shareable)
        #expect(ModelProfile.catalog[task.model] != nil)
        #expect(spec.drainTime == 5)
        #expect(WorkloadSpec(tasks: [TaskSpec(deadline: 2)]).drainTime == 2)
        #expect(WorkloadSpec(tasks: [TaskSpec(deadline: 2), TaskSpec(name: "b", deadline: 30)]).drainTime == 5)
        #expect(WorkloadSpec(tasks: [TaskSpec(deadline: 2), TaskSpec(name: "b", deadline: 3)]).longestDeadline == 3)
    }

    @Test func taskMixIsDrawnByWeight() {
        let spec = WorkloadSpec(tasks: [TaskSpec(name: "a", weight: 3), TaskSpec(name: "b", weight: 1), TaskSpec(name: "never", weight: 0)])
        var rng = SeededGenerator(seed: 5, label: "mix")
        var counts: [String: Int] = [:]
        for _ in 0..<20_000 { counts[spec.pickTask(using: &rng).name, default: 0] += 1 }
        #expect(counts["never"] == nil)
        let share = Double(counts["a"] ?? 0) / 20_000
        #expect(abs(share - 0.75) < 0.015, "share of a: \(share)")
        // A single task draws nothing: the random stream is that of a scenario without a mix.
        var a = SeededGenerator(seed: 1), b = SeededGenerator(seed: 1)
        _ = WorkloadSpec().pickTask(using: &a)
        #expect(a.next() == b.next())
    }

    @Test func sharingKeysAreTaskAndArea() {
        let spec = WorkloadSpec(sharingArea: 100)
        #expect(spec.sharingKey(task: "hazard", at: Position(x: 150, y: -20)) == "hazard@1,-1")
        #expect(spec.sharingKey(task: "hazard", at: Position(x: 199.9, y: -99)) == "hazard@1,-1")
        #expect(spec.sharingKey(task: "hazard", at: Position(x: 200, y: -20)) == "hazard@2,-1")
        #expect(spec.sharingKey(task: "plan", at: Position(x: 150, y: -20)) == "plan@1,-1")
    }
}
