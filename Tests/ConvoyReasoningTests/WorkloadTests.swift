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
        #expect(spec.arrival == .poisson && spec.meanInterval == 2 && spec.model == "llama-3-8b")
        #expect(spec.inputTokens == 256 && spec.outputTokens == 32 && spec.deadline == 5)
        #expect(ModelProfile.catalog[spec.model] != nil)
        #expect(spec.drainTime == 5)
        #expect(WorkloadSpec(deadline: 2).drainTime == 2)
        #expect(WorkloadSpec(deadline: 30).drainTime == 5)
    }
}
