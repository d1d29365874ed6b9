import ConvoyCore
import ConvoyLinks
import ConvoyReasoning
import Testing

@Suite struct PathChoiceTests {
    let here = Position(x: 0, y: 0)
    let cellular = CellularParameters()

    @Test func aliveRSUsInRangeRankedBySharedRateThenMacro() {
        let rsus = [
            RSUView(id: "far", position: Position(x: 200, y: 0), radius: 300, alive: true),
            RSUView(id: "dead", position: Position(x: 10, y: 0), radius: 300, alive: false),
            RSUView(id: "loaded", position: Position(x: 0, y: 50), radius: 300, alive: true, activeVehicles: 3),
            RSUView(id: "out", position: Position(x: 400, y: 0), radius: 300, alive: true),
            RSUView(id: "near", position: Position(x: 50, y: 0), radius: 300, alive: true),
            RSUView(id: "rim", position: Position(x: 0, y: -250), radius: 250, alive: true),
        ]
        let macro = MacroView(position: Position(x: 1000, y: 0), radius: 1500, target: "cloud")
        let routes = PathChoice.candidates(at: here, rsus: rsus, macro: macro, cellular: cellular)
        // Rates: near 50 m alone > loaded 50 m shared by 4 > far 200 m alone > rim 250 m alone.
        let rate = { (d: Double, n: Int) in CellularBudget.rateBitsPerSecond(distance: d, parameters: cellular, share: 1 / Double(n)) }
        #expect(rate(50, 1) > rate(50, 4) && rate(50, 4) > rate(200, 1) && rate(200, 1) > rate(250, 1))
        #expect(routes == [Route(.rsu, "near"), Route(.rsu, "loaded"), Route(.rsu, "far"), Route(.rsu, "rim"), Route(.macro, "cloud")])
        #expect(routes.map(\.description) == ["rsu:near", "rsu:loaded", "rsu:far", "rsu:rim", "macro:cloud"])
    }

    @Test func moreActiveVehiclesRankLower() {
        let rsus = (0..<4).map { i in RSUView(id: "r\(i)", position: Position(x: 100, y: 0), radius: 300, alive: true, activeVehicles: 3 - i) }
        let routes = PathChoice.candidates(at: here, rsus: rsus, macro: nil, cellular: cellular)
        #expect(routes.map(\.target) == ["r3", "r2", "r1", "r0"])
    }

    @Test func tiesBrokenByQueueThenId() {
        let rsus = [
            RSUView(id: "b", position: Position(x: 100, y: 0), radius: 300, alive: true, activeVehicles: 1, queued: 2),
            RSUView(id: "c", position: Position(x: 0, y: 100), radius: 300, alive: true, activeVehicles: 1, queued: 1),
            RSUView(id: "a", position: Position(x: -100, y: 0), radius: 300, alive: true, activeVehicles: 1, queued: 2),
        ]
        let routes = PathChoice.candidates(at: here, rsus: rsus, macro: nil, cellular: cellular)
        #expect(routes.map(\.target) == ["c", "a", "b"])
    }

    @Test func macroOnlyWithinItsRadius() {
        let macro = MacroView(position: Position(x: 1000, y: 0), radius: 999, target: "cloud")
        #expect(PathChoice.candidates(at: here, rsus: [], macro: macro, cellular: cellular) == [])
        let rim = MacroView(position: Position(x: 1000, y: 0), radius: 1000, target: "cloud-2")
        #expect(PathChoice.candidates(at: here, rsus: [], macro: rim, cellular: cellular) == [Route(.macro, "cloud-2")])
        #expect(PathChoice.candidates(at: here, rsus: [], macro: nil, cellular: cellular) == [])
    }

    @Test func noUsableRSUs() {
        let rsus = [
            RSUView(id: "dead", position: Position(x: 1, y: 1), radius: 300, alive: false),
            RSUView(id: "out", position: Position(x: 300.5, y: 0), radius: 300, alive: true),
        ]
        #expect(PathChoice.candidates(at: here, rsus: rsus, macro: nil, cellular: cellular) == [])
    }
}
