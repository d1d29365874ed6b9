import ConvoyCore
import ConvoyLinks
import Foundation
import Testing

@Suite struct WiredLinkTests {
    @Test func defaults() {
        #expect(WiredParameters.backhaulDefault == WiredParameters(latency: 0.002, jitter: 0.0002, bandwidthBitsPerSecond: 1e9, loss: 0))
        #expect(WiredParameters.wanDefault == WiredParameters(latency: 0.030, jitter: 0.003, bandwidthBitsPerSecond: 1e9, loss: 0))
    }

    @Test func latencyPlusSerialisationWithoutJitter() {
        var link = WiredLink(parameters: WiredParameters(latency: 0.01, bandwidthBitsPerSecond: 1e6))
        var rng = SeededGenerator(seed: 5)
        // 125 000 bytes = 1 Mbit: 1 s on a 1 Mbit/s wire.
        let at = deliveryTime(link.transmit(bytes: 125_000, now: 3, rng: &rng))
        #expect(isClose(at, 3 + 1 + 0.01, 1e-12))
    }

    @Test func fifoBackToBack() {
        var link = WiredLink(parameters: WiredParameters(latency: 0.01, bandwidthBitsPerSecond: 1e6))
        var rng = SeededGenerator(seed: 5)
        let first = deliveryTime(link.transmit(bytes: 125_000, now: 0, rng: &rng))
        let second = deliveryTime(link.transmit(bytes: 125_000, now: 0.5, rng: &rng))
        #expect(isClose(first, 1.01, 1e-12))
        #expect(isClose(second, 2.01, 1e-12))
        #expect(isClose(link.backlog(now: 1.5), 0.5, 1e-12))
    }

    @Test func jitterStaysWithinBounds() {
        var link = WiredLink(parameters: .wanDefault)
        var rng = SeededGenerator(seed: 5)
        var delays: [Double] = []
        for i in 0..<2000 {
            let now = Double(i)  // far apart: no queueing
            delays.append(deliveryTime(link.transmit(bytes: 0, now: now, rng: &rng)) - now)
        }
        #expect(delays.allSatisfy { $0 >= 0.027 - 1e-12 && $0 <= 0.033 + 1e-12 })
        let mean = delays.reduce(0, +) / Double(delays.count)
        #expect(isClose(mean, 0.030, 0.0002))  // σ of the mean ≈ 0.003/√3/√2000 ≈ 0.04 ms
        #expect(delays.contains { $0 < 0.0285 } && delays.contains { $0 > 0.0315 })
    }

    @Test func jitterNeverMakesLatencyNegative() {
        var link = WiredLink(parameters: WiredParameters(latency: 0.001, jitter: 0.01, bandwidthBitsPerSecond: 1e9))
        var rng = SeededGenerator(seed: 5)
        for i in 0..<500 {
            let now = Double(i)
            #expect(deliveryTime(link.transmit(bytes: 0, now: now, rng: &rng)) >= now)
        }
    }

    @Test func lossHitsItsRate() {
        let draws = 10_000
        var link = WiredLink(parameters: WiredParameters(latency: 0.002, jitter: 0.0002, bandwidthBitsPerSecond: 1e9, loss: 0.1))
        var t = 0.0
        let observed = lossFraction(draws: draws) { rng in
            t += 0.001
            return link.transmit(bytes: 1000, now: t, rng: &rng)
        }
        #expect(withinFourSigma(observed, p: 0.1, draws: draws), "observed \(observed)")
    }

    @Test func decoding() throws {
        let decoded = try JSONDecoder().decode(WiredParameters.self, from: Data(#"{"latency": 0.005, "bandwidthBitsPerSecond": 1e8}"#.utf8))
        #expect(decoded == WiredParameters(latency: 0.005, jitter: 0, bandwidthBitsPerSecond: 1e8, loss: 0))
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(WiredParameters.self, from: Data(#"{"latency": 0.005}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(WiredParameters.self, from: Data(#"{"latency": 0.005, "bandwidthBitsPerSecond": 1e8, "loss": 2}"#.utf8))
        }
        let roundTrip = try JSONDecoder().decode(WiredParameters.self, from: JSONEncoder().encode(WiredParameters.wanDefault))
        #expect(roundTrip == .wanDefault)
    }
}
