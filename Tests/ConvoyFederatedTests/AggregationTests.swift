import Foundation
import Testing
@testable import ConvoyFederated

/// The aggregation, clustering, staleness and chunking rules on small tensors.
@Suite struct AggregationTests {
    @Test func adapterBytesAreFloat32LittleEndian() {
        let a = Adapter([1, -2.5, 0])
        #expect(a.bytes == [0, 0, 0x80, 0x3F, 0, 0, 0x20, 0xC0, 0, 0, 0, 0])
        #expect(Adapter(bytes: a.bytes) == a)
        #expect(Adapter(bytes: a.bytes, expected: 4) == nil)
        #expect(Adapter(bytes: [1, 2, 3]) == nil)
        // A SmolLM2 LoRA of rank 8 on q and v: 30 layers × (q: 8·(576+576) + v: 8·(576+192)) = 460,800 parameters.
        let smol = 30 * (8 * (576 + 576) + 8 * (576 + 192))
        #expect(smol == 460_800)
        #expect(Adapter(zeros: smol).byteCount == 1_843_200)
    }

    @Test func fedAvgWeighsBySamples() {
        let m = Aggregation.fedAvg([(Adapter([1, 0]), 1), (Adapter([4, 3]), 2)])!
        // (1·1 + 2·4)/3 = 3, (0 + 2·3)/3 = 2
        #expect(m == Adapter([3, 2]))
        // All weights 0: the plain mean.
        #expect(Aggregation.fedAvg([(Adapter([1]), 0), (Adapter([3]), 0)]) == Adapter([2]))
        #expect(Aggregation.fedAvg([]) == nil)
        let updates = [ClientUpdate(vehicle: "a", adapter: Adapter([2]), samples: 30), ClientUpdate(vehicle: "b", adapter: Adapter([6]), samples: 10)]
        #expect(Aggregation.fedAvg(clients: updates) == Adapter([3]))
    }

    @Test func fedAsyncWeightsStaleUpdatesDown() {
        // α(1+τ)^−a with α = 0.6, a = 0.5: τ = 0 → 0.6, τ = 3 → 0.3.
        #expect(abs(Aggregation.stalenessWeight(alpha: 0.6, exponent: 0.5, staleness: 0) - 0.6) < 1e-12)
        #expect(abs(Aggregation.stalenessWeight(alpha: 0.6, exponent: 0.5, staleness: 3) - 0.3) < 1e-12)
        let fresh = Aggregation.fedAsync(global: Adapter([0, 10]), update: Adapter([10, 0]), alpha: 0.6, exponent: 0.5, staleness: 0)
        #expect(fresh == Adapter([6, 4]))
        let stale = Aggregation.fedAsync(global: Adapter([0, 10]), update: Adapter([10, 0]), alpha: 0.6, exponent: 0.5, staleness: 3)
        #expect(stale == Adapter([3, 7]))
    }

    @Test func fedBuffAppliesTheMeanDeltaOnceFull() {
        var buffer = UpdateBuffer(size: 2, serverRate: 0.5)
        let global = Adapter([1, 1])
        #expect(buffer.add(delta: Adapter([2, 0]), weight: 1, to: global) == nil)
        // mean of (2,0)·1 and (0,4)·0.5 = (1, 1); × 0.5 → (0.5, 0.5)
        #expect(buffer.add(delta: Adapter([0, 4]), weight: 0.5, to: global) == Adapter([1.5, 1.5]))
        #expect(buffer.deltas.isEmpty)
    }

    @Test func kMeansSeparatesDirections() {
        let d: [String: Adapter] = [
            "a": Adapter([1, 0.1, 0]), "b": Adapter([0.9, 0, 0.1]), "c": Adapter([0, 1, 0.1]), "d": Adapter([0.1, 2, 0]),
            "e": Adapter([0, 0, 5]), "f": Adapter([0.1, 0, 3]),
        ]
        let c = Clustering.kMeans(d, k: 3)
        #expect(c["a"] == c["b"] && c["c"] == c["d"] && c["e"] == c["f"])
        #expect(Set([c["a"]!, c["c"]!, c["e"]!]).count == 3)
        // More clusters than clients: one each.
        #expect(Set(Clustering.kMeans(["x": Adapter([1]), "y": Adapter([-1])], k: 5).values).count == 2)
        #expect(Clustering.byLabel(["v1": "python", "v2": "c", "v3": "python"]) == ["v1": 1, "v2": 0, "v3": 1])
    }

    @Test func chunksReassembleInAnyOrder() {
        let bytes = (0..<1000).map { UInt8($0 % 251) }
        let parts = Chunking.chunks(of: bytes, size: 300)
        #expect(parts.map(\.count) == [300, 300, 300, 100])
        var r = Reassembly(count: 4, totalBytes: 1000)
        for i in [3, 1, 0] { #expect(r.add(index: i, count: 4, totalBytes: 1000, data: parts[i]) == .accepted) }
        #expect(r.missing == [2])
        #expect(r.bytes == nil)
        #expect(r.add(index: 1, count: 4, totalBytes: 1000, data: parts[1]) == .duplicate)
        #expect(r.add(index: 4, count: 4, totalBytes: 1000, data: []) != .accepted)
        #expect(r.add(index: 2, count: 5, totalBytes: 1000, data: parts[2]) != .accepted)
        #expect(r.add(index: 2, count: 4, totalBytes: 1000, data: parts[2]) == .accepted)
        #expect(r.bytes == bytes)
    }

    @Test func splitGivesEachClientADominantDomain() {
        let s = FedTuneConfig.split(vehicles: ["a", "b", "c"], domains: ["x", "y"], dominant: 0.8)
        #expect(s["a"]?["x"] == 0.8 && abs(s["a"]!["y"]! - 0.2) < 1e-12)
        #expect(s["b"]?["y"] == 0.8 && abs(s["b"]!["x"]! - 0.2) < 1e-12)
        #expect(s["c"]?["x"] == 0.8)
        var config = FedTuneConfig()
        config.clients = s
        #expect(config.label(of: "b") == "y")
    }
}
