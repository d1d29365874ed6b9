import ConvoyCore
import ConvoyNodeCore
import ConvoyReasoning
import ConvoyScenario
import ConvoyWire
import Testing

/// Federated analytics in the node cores, against scripted events: a vehicle answers from its own
/// trajectory and re-sends until acknowledged; an RSU relays; the aggregator counts each vehicle
/// once and records its estimate when due.
@Suite struct AnalyticsNodeTests {
    static let config = AnalyticsConfig(query: RoadCellQuery(cellSize: 100, window: 0..<10), aggregator: "edge-1", grace: 2)

    @Test func aVehicleSendsItsAnswerAndResendsUntilAcknowledged() throws {
        var scenario = testScenario(interval: 1000)
        scenario.analytics = Self.config
        // 10 m/s from x = 100 for 30 s: x 100…190 during the window, all in cell 1.
        var v = VehicleScript(.init(id: "veh", scenario: scenario, seed: 7, duration: 30,
                                    trajectory: straightLine("veh", from: 100, to: 400, duration: 30)))
        v.script.send(.start, at: 0)
        v.beacons(from: 0, to: 11.1, rsus: ["rsu-a"])
        let sent = v.script.sends.filter { $0.message.kind == .analyticsUp }
        #expect(sent.count == 3, "at 10 s, then every 0.5 s without a receipt")
        #expect(abs(sent[0].at - 10) < 0.01 && sent[0].message.channel == .access(node: "rsu-a"))
        let report = try #require(sent[0].message.decoded(AnalyticsReport.self))
        #expect(report.cells == [AnalyticsReport.Cell(x: 1, y: 0, meanSpeed: 10)])
        v.script.send(.frames(.access, frames(AnalyticsAck(vehicleID: "veh"), from: "rsu-a", at: 11.1, prefix: "rsu-a")), at: 11.1)
        v.beacons(from: 11.1, to: 14, rsus: ["rsu-a"])
        #expect(v.script.sends.filter { $0.message.kind == .analyticsUp }.count == 3, "no re-send after the receipt")
        #expect(v.script.counters["analytics_acked"] == 1)
    }

    @Test func anRSURelaysAnswersUpAndReceiptsBack() throws {
        var rsu = try ServerScript("rsu-a", analytics: Self.config)
        rsu.script.send(.start, at: 0)
        let report = AnalyticsReport(vehicleID: "veh", cells: [.init(x: 0, y: 0, meanSpeed: 5)])
        rsu.script.send(.frames(.clients, frames(report, from: "veh", at: 10, position: Position(x: 50, y: 0), prefix: "veh")), at: 10)
        rsu.script.advance(to: 10.5)
        let up = try #require(rsu.script.sends.first { $0.message.kind == .analyticsUp })
        #expect(up.message.channel == .upstream && up.message.decoded(AnalyticsReport.self)?.route == ["rsu-a"])
        #expect((rsu.script.counters["analytics_up_bytes_from_vehicles"] ?? 0) > 0)
        // The receipt from the edge goes back to the vehicle.
        rsu.script.send(.frames(.upstream, [frames(AnalyticsAck(vehicleID: "veh"), from: "edge-1", at: 10.6, prefix: "")[1]]), at: 10.6)
        rsu.script.advance(to: 11)
        let back = try #require(rsu.script.sends.first { $0.message.kind == .analyticsAck })
        #expect(back.message.channel == .client(routingID: Array("veh".utf8)))
        // An answer in another vehicle's name is refused.
        let forged = AnalyticsReport(vehicleID: "other", cells: [])
        rsu.script.send(.frames(.clients, frames(forged, from: "veh", at: 11, position: Position(x: 50, y: 0), prefix: "veh")), at: 11)
        #expect(rsu.script.counters["analytics_for_another_sender"] == 1)
    }

    @Test func theAggregatorCountsEachVehicleOnceAndRecordsWhenDue() throws {
        var edge = try ServerScript("edge-1", analytics: Self.config)
        edge.script.send(.start, at: 0)
        func relayed(_ vehicle: String, speed: Double, at t: Double) {
            let report = AnalyticsReport(vehicleID: vehicle, route: ["rsu-a"], cells: [.init(x: 0, y: 0, meanSpeed: speed)])
            edge.script.send(.frames(.clients, frames(report, from: "rsu-a", at: t, prefix: "rsu-a")), at: t)
        }
        relayed("a", speed: 10, at: 10.1)
        relayed("a", speed: 10, at: 10.6)  // a re-send
        relayed("b", speed: 20, at: 10.2)
        edge.script.advance(to: 12.5)
        #expect(edge.script.counters["analytics_answers"] == 2 && edge.script.counters["analytics_answers_duplicate"] == 1)
        #expect(edge.script.sends.filter { $0.message.kind == .analyticsAck }.count == 3, "every copy is acknowledged")
        let cells = edge.script.records.compactMap { if case .analyticsCell(let c) = $0 { c } else { nil } }
        #expect(cells == [AnalyticsCellRecord(source: "estimate", cellX: 0, cellY: 0, vehicles: 2, meanSpeed: 15, contributors: 2,
                                              epsilon: nil, at: 12, recordedBy: "edge-1")])
        relayed("c", speed: 30, at: 13)
        #expect(edge.script.counters["analytics_answers_late"] == 1)
    }
}
