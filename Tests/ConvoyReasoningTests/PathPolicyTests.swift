import ConvoyCore
import ConvoyLinks
import Testing
@testable import ConvoyReasoning

@Suite("Path policies on fixed inputs")
struct PathPolicyTests {
    // A vehicle at the origin; rsu-near is 50 m away but busy and crowded, rsu-far 240 m away and
    // idle, rsu-dead near but silent, rsu-out beyond its radius; the macro cell covers everything.
    let context = PathContext(
        position: Position(x: 0, y: 0),
        rsus: [
            RSUView(id: "rsu-near", position: Position(x: 50, y: 0), radius: 250, alive: true, activeVehicles: 19, queued: 5),
            RSUView(id: "rsu-far", position: Position(x: 240, y: 0), radius: 250, alive: true, activeVehicles: 0, queued: 0),
            RSUView(id: "rsu-dead", position: Position(x: 10, y: 0), radius: 250, alive: false),
            RSUView(id: "rsu-out", position: Position(x: 400, y: 0), radius: 250, alive: true),
        ],
        macro: MacroView(position: Position(x: 300, y: 300), radius: 2000, target: "cloud"),
        cellular: CellularParameters(), macroCellular: CellularParameters(bandwidthHz: 10e6, noiseDBm: -99),
        wanLatency: 0.03, payloadBytes: 20_000)

    @Test func everyPolicyIsRegisteredUnderItsName() {
        #expect(PathPolicies.names == ["best-rate", "nearest-rsu", "least-expected-latency", "cloud-only"])
        for name in PathPolicies.names { #expect(PathPolicies.named(name)?.name == name) }
        #expect(PathPolicies.named("magic") == nil)
        #expect(PathPolicies.defaultName == "best-rate")
    }

    @Test func nearestRSUIgnoresLoad() {
        #expect(NearestRSUPolicy().rank(context) == [Route(.rsu, "rsu-near"), Route(.rsu, "rsu-far"), Route(.macro, "cloud")])
    }

    @Test func bestRatePrefersTheIdleCellWhenTheNearOneIsCrowded() throws {
        // rsu-near: 1/20 of the band at 50 m; rsu-far: the whole band at 240 m.
        let near = CellularBudget.rateBitsPerSecond(distance: 50, share: 0.05)
        let far = CellularBudget.rateBitsPerSecond(distance: 240, share: 1)
        try #require(far > near)
        #expect(BestRatePolicy().rank(context) == [Route(.rsu, "rsu-far"), Route(.rsu, "rsu-near"), Route(.macro, "cloud")])
    }

    @Test func leastExpectedLatencyChargesQueuesAndCanPreferTheMacroCell() {
        let ranked = LeastExpectedLatencyPolicy().rank(context)
        // rsu-near: 5 queued × 0.1 s = 0.5 s of penalty puts it last.
        #expect(ranked.first == Route(.rsu, "rsu-far"))
        #expect(ranked.last == Route(.rsu, "rsu-near"))
        #expect(ranked.contains(Route(.macro, "cloud")))
        // Without RSUs in range, only the macro cell is left.
        var alone = context
        alone.rsus = []
        #expect(LeastExpectedLatencyPolicy().rank(alone) == [Route(.macro, "cloud")])
    }

    @Test func cloudOnlyUsesTheMacroCellOrNothing() {
        #expect(CloudOnlyPolicy().rank(context) == [Route(.macro, "cloud")])
        var outside = context
        outside.macro = nil
        #expect(CloudOnlyPolicy().rank(outside).isEmpty)
    }

    @Test func deadAndOutOfRangeRSUsAreNeverOffered() {
        for policy in PathPolicies.all {
            let targets = policy.rank(context).map(\.target)
            #expect(!targets.contains("rsu-dead"), "\(policy.name)")
            #expect(!targets.contains("rsu-out"), "\(policy.name)")
        }
    }
}
