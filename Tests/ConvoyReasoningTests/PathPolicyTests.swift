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
        #expect(PathPolicies.names == ["best-rate", "nearest-rsu", "least-expected-latency", "cost-aware", "hedged", "local-only",
                                       "cloud-only"])
        #expect(PathPolicies.all.map(\.width) == [1, 1, 1, 1, 2, 1, 1])
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

    /// `context` plus on-board compute (1.2 s to the answer), a neighbour 60 m away that can relay
    /// (no compute of its own) and one 400 m away (beyond V2V range), and compute behind each node.
    var rich: PathContext {
        var c = context
        c.onboard = OnboardView(id: "me", finishIn: 1.2)
        c.neighbours = [
            NeighbourView(id: "veh-relay", position: Position(x: 0, y: 60), freeSlots: 0, uplinkRate: 50e6),
            NeighbourView(id: "veh-far", position: Position(x: 0, y: 400), freeSlots: 1, uplinkRate: 50e6),
        ]
        c.serviceTime = ["rsu-near": 0.7, "rsu-far": 0.7, "cloud": 0.3]
        c.neighbourComputeTime = 4.6
        return c
    }

    @Test func expectedLatencyAddsUploadQueueAndCompute() throws {
        let c = rich
        let bits = 20_000.0 * 8
        let far = CellularBudget.rateBitsPerSecond(distance: 240, share: 1)
        #expect(abs(try #require(c.expectedLatency(Route(.rsu, "rsu-far"))) - (bits / far + 0.7)) < 1e-9)
        let near = CellularBudget.rateBitsPerSecond(distance: 50, share: 0.05)
        #expect(abs(try #require(c.expectedLatency(Route(.rsu, "rsu-near"))) - (bits / near + 0.5 + 0.7)) < 1e-9)
        #expect(c.expectedLatency(Route(.onboard, "me")) == 1.2)
        // The macro cell is shared with the vehicles the cloud advertises, and its queue is charged.
        let macroDistance = Position(x: 300, y: 300).distance(to: Position(x: 0, y: 0))
        let macroParameters = CellularParameters(bandwidthHz: 10e6, noiseDBm: -99)
        let idleMacro = CellularBudget.rateBitsPerSecond(distance: macroDistance, parameters: macroParameters)
        #expect(abs(try #require(c.expectedLatency(Route(.macro, "cloud"))) - (bits / idleMacro + 0.03 + 0.3)) < 1e-9)
        var crowded = c
        crowded.macro?.activeVehicles = 29
        crowded.macro?.queued = 5
        let shared = CellularBudget.rateBitsPerSecond(distance: macroDistance, parameters: macroParameters, share: 1.0 / 30)
        #expect(abs(try #require(crowded.expectedLatency(Route(.macro, "cloud"))) - (bits / shared + 0.03 + 0.5 + 0.3)) < 1e-9)
        #expect(LeastExpectedLatencyPolicy().rank(crowded).firstIndex(of: Route(.macro, "cloud"))!
                > LeastExpectedLatencyPolicy().rank(c).firstIndex(of: Route(.macro, "cloud"))!)
        // Relayed: V2V hop at the 802.11p rate for 60 m, the neighbour's uplink, the fastest server.
        let v2vRate = try #require(V2VBudget.rateBitsPerSecond(snrDB: V2VBudget.snrDB(distance: 60)))
        #expect(abs(try #require(c.expectedLatency(Route(.v2v, "veh-relay"))) - (bits / v2vRate + bits / 50e6 + 0.7)) < 1e-9,
                "relayed to an unknown RSU: the slowest service time counts")
        #expect(c.expectedLatency(Route(.v2v, "veh-far")) == nil, "beyond V2V range")
        #expect(c.expectedLatency(Route(.rsu, "rsu-dead")) == nil)
        // A neighbour with free compute is charged its compute time instead of the relay.
        var computing = c
        computing.neighbours[0].freeSlots = 1
        #expect(abs(try #require(computing.expectedLatency(Route(.v2v, "veh-relay"))) - (bits / v2vRate + 4.6)) < 1e-9)
    }

    @Test func leastExpectedLatencyWeighsEveryKindOfPath() {
        let ranked = LeastExpectedLatencyPolicy().rank(rich)
        #expect(Set(ranked) == [Route(.rsu, "rsu-far"), Route(.rsu, "rsu-near"), Route(.macro, "cloud"), Route(.onboard, "me"),
                                Route(.v2v, "veh-relay")])
        let latencies = ranked.map { rich.expectedLatency($0)! }
        #expect(latencies == latencies.sorted())
        #expect(ranked.first == Route(.macro, "cloud") || ranked.first == Route(.rsu, "rsu-far"))
    }

    @Test func hedgedKeepsTwoBestPathsInFlight() {
        #expect(HedgedPolicy().width == 2)
        #expect(HedgedPolicy().rank(rich) == LeastExpectedLatencyPolicy().rank(rich))
        // With the ledger: both best paths at once; the first answer cancels the other.
        var ledger = RequestLedger()
        let ranked = HedgedPolicy().rank(rich)
        let spec = RequestSpec(requestID: "r", model: "llama-3-8b", inputTokens: 1, outputTokens: 1, payloadBytes: 1, deadline: 5)
        let sent = ledger.open(spec, now: 0, candidates: ranked, width: HedgedPolicy().width)
        #expect(sent == [.send(spec: spec, attempt: 1, route: ranked[0], replyBy: 2.5),
                         .send(spec: spec, attempt: 2, route: ranked[1], replyBy: 2.5)])
        let done = ledger.replied(requestID: "r", attempt: 2, outcome: ReplyOutcome(kind: .completed, servedBy: "x", path: "rsu"),
                                  now: 0.8, candidates: ranked)
        #expect(done.contains(.cancel(requestID: "r", attempt: 1, route: ranked[0])))
        #expect(done.contains(.attemptEnded(requestID: "r", attempt: 1, route: ranked[0], sentAt: 0, endedAt: 0.8, outcome: .cancelled,
                                            detail: nil)))
    }

    @Test func costAwareTakesTheCheapestPathThatMakesTheDeadline() {
        var c = rich
        c.budget = 5
        // Everything is in time: on board is free, then the V2V relay (0.5), the RSUs (1), the cloud (3).
        #expect(CostAwarePolicy().rank(c) == [Route(.onboard, "me"), Route(.v2v, "veh-relay"), Route(.rsu, "rsu-far"),
                                              Route(.rsu, "rsu-near"), Route(.macro, "cloud")])
        // With 1 s left (0.8 s usable) on board (1.2 s) and the crowded RSU are too slow: the paths in
        // time by price lead, the late ones follow by expected latency.
        c.budget = 1
        #expect(CostAwarePolicy().rank(c) == [Route(.v2v, "veh-relay"), Route(.rsu, "rsu-far"), Route(.macro, "cloud"),
                                              Route(.onboard, "me"), Route(.rsu, "rsu-near")])
        // Prices come from the scenario.
        c.budget = 5
        c.prices.onboard = 10
        #expect(CostAwarePolicy().rank(c).last == Route(.onboard, "me"))
    }

    @Test func localOnlyUsesOnboardComputeEvenWhenBusy() {
        #expect(LocalOnlyPolicy().rank(rich) == [Route(.onboard, "me")])
        var busy = rich
        busy.onboard?.finishIn = nil
        #expect(LocalOnlyPolicy().rank(busy) == [Route(.onboard, "me")], "a full on-board server answers rejected; the ledger retries")
        #expect(!LeastExpectedLatencyPolicy().rank(busy).contains(Route(.onboard, "me")))
        #expect(LocalOnlyPolicy().rank(context).isEmpty, "no on-board compute")
    }

    @Test func withoutAnRSUInRangeNeighboursRelayAfterTheMacroCell() {
        var c = rich
        #expect(!BestRatePolicy().rank(c).contains { $0.path == .v2v }, "an RSU is in range: no relay")
        c.rsus = []
        #expect(BestRatePolicy().rank(c) == [Route(.macro, "cloud"), Route(.v2v, "veh-relay")])
        #expect(NearestRSUPolicy().rank(c) == [Route(.macro, "cloud"), Route(.v2v, "veh-relay")])
        c.macro = nil
        #expect(BestRatePolicy().rank(c) == [Route(.v2v, "veh-relay")])
        // A neighbour that can neither compute nor relay is not offered.
        c.neighbours[0].uplinkRate = 0
        #expect(BestRatePolicy().rank(c).isEmpty)
    }
}
