import ConvoyCore
import ConvoyLinks
import Testing

@Suite struct DeterminismTests {
    /// A mixed sequence of cellular, V2V and wired messages, all lossy and jittery.
    func run(seed: UInt64) -> [LinkOutcome] {
        var rng = SeededGenerator(seed: seed, label: "rsu-1")
        var cell = CellLink(position: Position(x: 0, y: 0), radius: 500, parameters: CellularParameters(residualLoss: 0.2))
        var wire = WiredLink(parameters: WiredParameters(latency: 0.002, jitter: 0.001, bandwidthBitsPerSecond: 1e8, loss: 0.2))
        // Noise chosen so that 200 m sits just above the 16-QAM 1/2 threshold: V2V losses happen.
        let v2v = V2VParameters(noiseDBm: 23 - V2VBudget.pathLossDB(distance: 200, frequencyGHz: 5.9) - 15.2)
        var outcomes: [LinkOutcome] = []
        for i in 0..<200 {
            let t = Double(i) * 0.01
            let p = Position(x: Double(i % 50) * 12, y: 0)
            outcomes.append(cell.uplink(vehicle: "v\(i % 5)", from: p, bytes: 1500, sentAt: t, now: t, rng: &rng))
            outcomes.append(cell.downlink(vehicle: "v\(i % 7)", to: p, bytes: 20_000, now: t, rng: &rng))
            outcomes.append(wire.transmit(bytes: 1500, now: t, rng: &rng))
            outcomes.append(V2VLink.receive(from: .init(x: 0, y: 0), to: .init(x: 200, y: 0), bytes: 1500, sentAt: t, parameters: v2v, rng: &rng))
        }
        return outcomes
    }

    @Test func sameSeedSameOutcomes() {
        let first = run(seed: 2024)
        #expect(first == run(seed: 2024))
        #expect(first.contains(.lost))
        #expect(first.contains(.outOfRange))
        #expect(first.contains { $0.deliveryTime != nil })
    }

    @Test func differentSeedDifferentOutcomes() {
        #expect(run(seed: 2024) != run(seed: 2025))
    }
}
