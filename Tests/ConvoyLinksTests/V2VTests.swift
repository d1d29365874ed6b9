import ConvoyCore
import ConvoyLinks
import Foundation
import Testing

@Suite struct V2VBudgetTests {
    /// Hand-computed with the defaults (5.9 GHz, 23 dBm, −95 dBm):
    /// 18.2·log10(5.9) = 14.03, so PL = 52.80 + 16.7·log10(d):
    ///  10 m: PL 69.50 dB, SNR 48.50 dB → 27 Mbit/s
    /// 100 m: PL 86.20 dB, SNR 31.80 dB → 27 Mbit/s
    /// 300 m: PL 94.17 dB, SNR 23.83 dB → 18 Mbit/s (between the 20 and 25 dB thresholds)
    @Test(arguments: [
        (10.0, 69.50, 48.50, 27e6),
        (100.0, 86.20, 31.80, 27e6),
        (300.0, 94.17, 23.83, 18e6),
    ])
    func handComputedNumbers(distance: Double, pathLoss: Double, snr: Double, rate: Double) {
        #expect(isClose(V2VBudget.pathLossDB(distance: distance, frequencyGHz: 5.9), pathLoss, 0.01))
        let computedSNR = V2VBudget.snrDB(distance: distance, parameters: V2VParameters())
        #expect(isClose(computedSNR, snr, 0.01))
        #expect(V2VBudget.rateBitsPerSecond(snrDB: computedSNR) == rate)
    }

    @Test func distanceIsClampedToOneMetre() {
        #expect(V2VBudget.pathLossDB(distance: 0, frequencyGHz: 5.9) == V2VBudget.pathLossDB(distance: 1, frequencyGHz: 5.9))
        #expect(V2VBudget.pathLossDB(distance: 0, frequencyGHz: 5.9).isFinite)
    }

    @Test func modulationThresholds() {
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 4.99) == nil)
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 5) == 3e6)
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 10) == 6e6)
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 25.5) == 24e6)
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 26) == 27e6)
        #expect(V2VBudget.rateBitsPerSecond(snrDB: 26, bandwidthHz: 20e6) == 54e6)
        let rates = V2VBudget.mcsTable.map(\.rateBitsPerSecond)
        #expect(rates == [3e6, 4.5e6, 6e6, 9e6, 12e6, 18e6, 24e6, 27e6])
    }

    @Test func packetErrorRateModel() {
        // 10 % for 1000 bytes at a threshold, whatever the scheme.
        for scheme in V2VBudget.mcsTable {
            #expect(isClose(V2VBudget.packetErrorRate(snrDB: scheme.thresholdDB, bytes: 1000), 0.1, 1e-12))
        }
        // Longer packets fail more often: 1 − 0.9² for 2000 bytes.
        #expect(isClose(V2VBudget.packetErrorRate(snrDB: 15, bytes: 2000), 0.19, 1e-12))
        #expect(V2VBudget.packetErrorRate(snrDB: 15, bytes: 100) < 0.1)
        // Falls steeply above the threshold: 1 / (1 + 9e²) at +1 dB.
        #expect(isClose(V2VBudget.packetErrorRate(snrDB: 16, bytes: 1000), 1 / (1 + 9 * exp(2.0)), 1e-12))
        #expect(V2VBudget.packetErrorRate(snrDB: 17, bytes: 1000) < V2VBudget.packetErrorRate(snrDB: 16, bytes: 1000))
        // No link below the lowest threshold; nothing to lose for an empty packet.
        #expect(V2VBudget.packetErrorRate(snrDB: 4, bytes: 100) == 1)
        #expect(V2VBudget.packetErrorRate(snrDB: 15, bytes: 0) == 0)
    }

    @Test func decodingFillsDefaults() throws {
        let partial = try JSONDecoder().decode(V2VParameters.self, from: Data(#"{"rangeM": 150}"#.utf8))
        #expect(partial == V2VParameters(rangeM: 150))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(V2VParameters.self, from: Data(#"{"frequencyGHz": -1}"#.utf8))
        }
    }
}

@Suite struct V2VLinkTests {
    let a = Position(x: 0, y: 0)

    @Test func deliveryIsSerialisationPlusPropagation() {
        var rng = SeededGenerator(seed: 3)
        let b = Position(x: 60, y: 80)  // 100 m
        let at = deliveryTime(V2VLink.receive(from: a, to: b, bytes: 1000, sentAt: 7, parameters: V2VParameters(), rng: &rng))
        #expect(isClose(at, 7 + 8000 / 27e6 + 100 / c, 1e-12))
    }

    @Test func at300mUses18Mbit() {
        var rng = SeededGenerator(seed: 3)
        let b = Position(x: 300, y: 0)
        let at = deliveryTime(V2VLink.receive(from: a, to: b, bytes: 1000, sentAt: 0, parameters: V2VParameters(), rng: &rng))
        #expect(isClose(at, 8000 / 18e6 + 300 / c, 1e-12))
    }

    @Test func beyondRangeIsOutOfRange() {
        var rng = SeededGenerator(seed: 3)
        let b = Position(x: 300.1, y: 0)
        #expect(V2VLink.receive(from: a, to: b, bytes: 100, sentAt: 0, parameters: V2VParameters(), rng: &rng) == .outOfRange)
        let short = V2VParameters(rangeM: 50)
        #expect(V2VLink.receive(from: a, to: Position(x: 60, y: 0), bytes: 100, sentAt: 0, parameters: short, rng: &rng) == .outOfRange)
    }

    @Test func belowLowestThresholdIsOutOfRange() {
        var rng = SeededGenerator(seed: 3)
        // With 0 dBm the SNR at 290 m is ≈ 1.1 dB: no scheme decodes.
        let weak = V2VParameters(txPowerDBm: 0)
        #expect(V2VLink.receive(from: a, to: Position(x: 290, y: 0), bytes: 100, sentAt: 0, parameters: weak, rng: &rng) == .outOfRange)
    }

    /// Pick a noise level that puts the receiver exactly on the 16-QAM 1/2 threshold (15 dB): a
    /// 1000-byte packet is then lost 10 % of the time.
    @Test func packetErrorsHitTheModelledRate() {
        let distance = 100.0
        let noise = 23 - V2VBudget.pathLossDB(distance: distance, frequencyGHz: 5.9) - 15
        let parameters = V2VParameters(noiseDBm: noise)
        #expect(isClose(V2VBudget.snrDB(distance: distance, parameters: parameters), 15, 1e-9))
        let b = Position(x: distance, y: 0)
        let draws = 10_000
        let observed = lossFraction(draws: draws) { rng in
            V2VLink.receive(from: a, to: b, bytes: 1000, sentAt: 0, parameters: parameters, rng: &rng)
        }
        #expect(withinFourSigma(observed, p: 0.1, draws: draws), "observed \(observed)")
    }
}
