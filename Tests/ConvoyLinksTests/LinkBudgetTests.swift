import ConvoyCore
import Testing
@testable import ConvoyLinks

@Suite("Link budgets and the CQI rate table")
struct LinkBudgetTests {
    @Test func cellularBudgetAt100mIsThePapersWorkedExample() throws {
        let budget = LinkBudget.cellular(distance: 100, bytes: 20_000, parameters: CellularParameters())
        #expect(abs(try #require(budget.pathLossDB) - 90.5) < 0.05)
        #expect(abs(try #require(budget.snrDB) - 12.5) < 0.05)
        let rate = try #require(budget.rateBitsPerSecond)
        #expect(abs(rate / 1e6 - 84.63) < 0.05)
        // 20 000 bytes at 84.63 Mbit/s: 1.8906 ms, plus 0.33 µs of propagation.
        #expect(abs(try #require(budget.deliveryMs) - 160_000 / rate * 1e3 - 100 / 299_792_458 * 1e3) < 1e-9)
        #expect(budget.inRange)
    }

    @Test func sharingDividesTheRate() throws {
        let alone = try #require(LinkBudget.cellular(distance: 200, bytes: 1000, parameters: CellularParameters()).rateBitsPerSecond)
        let shared = try #require(LinkBudget.cellular(distance: 200, bytes: 1000, parameters: CellularParameters(), sharing: 4).rateBitsPerSecond)
        #expect(abs(shared * 4 - alone) < 1e-6 * alone)
    }

    @Test func beyondTheRadiusIsOutOfRange() {
        let budget = LinkBudget.cellular(distance: 300, bytes: 1000, parameters: CellularParameters(), radius: 250)
        #expect(!budget.inRange)
        #expect(budget.rateBitsPerSecond == nil)
        #expect(budget.deliveryMs == nil)
    }

    @Test func cqiTablePicksTheHighestEfficiencyReached() {
        let model = CellularRateModel.lteCQI
        #expect(model.spectralEfficiency(snrDB: -7) == 0)
        #expect(model.spectralEfficiency(snrDB: -6.7) == 0.1523)
        #expect(model.spectralEfficiency(snrDB: 12.5) == 2.7305)  // CQI 10 (11.7 dB ≤ 12.5 < 14.1)
        #expect(model.spectralEfficiency(snrDB: 40) == 5.5547)
        // At 100 m: 20 MHz × 2.7305 bit/s/Hz = 54.61 Mbit/s, below Shannon's 84.6.
        let p = CellularParameters(rateModel: .lteCQI)
        #expect(abs(CellularBudget.rateBitsPerSecond(distance: 100, parameters: p) - 54.61e6) < 1e3)
    }

    @Test func aCellWhereTheCQITableCannotSendIsOutOfRange() {
        // At 1 km with −80 dBm noise the SNR is −25 dB: below CQI 1.
        var cell = CellLink(position: Position(x: 0, y: 0), radius: 2000, parameters: CellularParameters(rateModel: .lteCQI))
        var rng = SeededGenerator(seed: 1)
        #expect(cell.uplink(vehicle: "v", from: Position(x: 1000, y: 0), bytes: 100, sentAt: 0, now: 0, rng: &rng) == .outOfRange)
        #expect(cell.uplink(vehicle: "v", from: Position(x: 100, y: 0), bytes: 100, sentAt: 0, now: 0, rng: &rng) != .outOfRange)
    }

    @Test func v2vBudgetMatchesTheModel() throws {
        let budget = LinkBudget.v2v(distance: 100, bytes: 300, parameters: V2VParameters())
        #expect(abs(try #require(budget.pathLossDB) - 86.2) < 0.05)
        #expect(budget.scheme == "64-QAM 3/4")
        #expect(budget.rateBitsPerSecond == 27e6)
        #expect(!LinkBudget.v2v(distance: 301, bytes: 300, parameters: V2VParameters()).inRange)
    }

    @Test func wiredBudgetIsLatencyPlusSerialisation() throws {
        let budget = LinkBudget.wired(.wan, bytes: 125_000, parameters: .wanDefault)
        #expect(abs(try #require(budget.deliveryMs) - (30 + 1)) < 1e-9)  // 1 Mbit at 1 Gbit/s = 1 ms
    }
}
