import ConvoyCore
import ConvoyScenario
@testable import ConvoyPlacement
import Foundation
import Testing

/// The 5×5 grid made once with `netgenerate --grid --grid.number 5 --grid.length 250
/// --tls.set B1,B3,D1,D3,C2 --no-turnarounds true --seed 1` (SUMO 1.28.0); it lives with the
/// mobility fixtures. Junctions A0…E4 every 250 m; traffic lights at B1, B3, C2, D1, D3.
let gridNetwork = repositoryRoot.appendingPathComponent("Tests/ConvoyMobilityTests/Fixtures/grid5x5.net.xml").path

@Suite struct PlacementTests {
    let network: SumoNetwork

    init() throws { network = try SumoNetwork.load(path: gridNetwork) }

    @Test func readsTheNetwork() {
        #expect(network.junctions.count == 25)
        #expect(network.junctions.filter(\.hasTrafficLight).map(\.id).sorted() == ["B1", "B3", "C2", "D1", "D3"])
        #expect(network.junctions.first { $0.id == "C2" }?.position == Position(x: 500, y: 500))
        #expect(network.edges.count == 80)  // 40 streets, both directions
        let edge = network.edges.first { $0.id == "A0A1" }
        #expect(edge?.priority == -1)
        #expect(abs((edge?.length ?? 0) - 239.6) < 0.01)
    }

    @Test func trafficLightsFirstSpacingRespectedEveryRSUServed() throws {
        var options = RSUPlacement.Options()
        options.radius = 200
        options.edgeServers = 3
        let placement = try RSUPlacement.place(on: network, options: options, file: gridNetwork)
        // The five signalised junctions come first, in their exact positions.
        let first = placement.rsus.prefix(5)
        #expect(first.allSatisfy { $0.reason == .trafficLight })
        #expect(Set(first.map(\.source)) == ["B1", "B3", "C2", "D1", "D3"])
        for rsu in first {
            #expect(rsu.position == network.junctions.first { $0.id == rsu.source }?.position)
        }
        // Then major junctions (the grid's inner and edge junctions: three or more roads).
        #expect(placement.rsus.contains { $0.reason == .majorJunction })
        // Minimum spacing.
        for (i, a) in placement.rsus.enumerated() {
            for b in placement.rsus[(i + 1)...] { #expect(a.position.distance(to: b.position) >= 200) }
        }
        // Every RSU is served by exactly one of the three edge servers.
        #expect(placement.edgeServers.count == 3)
        let served = placement.edgeServers.flatMap(\.rsus)
        #expect(served.sorted() == placement.rsus.map(\.id).sorted())
        #expect(placement.edgeServers.allSatisfy { !$0.rsus.isEmpty })
    }

    @Test func pointsAlongMajorRoadsWhenJunctionsAreFar() throws {
        var options = RSUPlacement.Options()
        options.radius = 100
        options.spacing = 100
        options.every = 120
        let placement = try RSUPlacement.place(on: network, options: options, file: gridNetwork)
        let along = placement.rsus.filter { $0.reason == .alongRoad }
        #expect(!along.isEmpty)
        for (i, a) in placement.rsus.enumerated() {
            for b in placement.rsus[(i + 1)...] { #expect(a.position.distance(to: b.position) >= 100) }
        }
    }

    @Test func maxRSUsAndOneEdgeServer() throws {
        var options = RSUPlacement.Options()
        options.maxRSUs = 4
        options.edgeServers = 1
        let placement = try RSUPlacement.place(on: network, options: options, file: gridNetwork)
        #expect(placement.rsus.count == 4)
        #expect(placement.edgeServers.map(\.rsus) == [["rsu-1", "rsu-2", "rsu-3", "rsu-4"]])
    }

    @Test func writtenMapIsAValidMap() throws {
        var options = RSUPlacement.Options()
        options.radius = 220
        let placement = try RSUPlacement.place(on: network, options: options, file: gridNetwork)
        let yaml = placement.yaml(name: "grid", network: "grid5x5.net.xml", options: options)
        let map = try MapSpec.parse(yaml, file: "grid.yaml")
        #expect(map.name == "grid")
        #expect(map.rsus.map(\.id) == placement.rsus.map(\.id))
        #expect(map.rsus.allSatisfy { $0.edge != nil && $0.radius == 220 })
        #expect(map.edges.count == 3)
        #expect(map.rsus[0].position == placement.rsus[0].position)
    }

    @Test func kMeansSeparatesTwoClusters() {
        let points = [Position(x: 0, y: 0), Position(x: 10, y: 0), Position(x: 1000, y: 0), Position(x: 1010, y: 0)]
        let (assignment, centres) = RSUPlacement.kMeans(points, k: 2)
        #expect(assignment[0] == assignment[1] && assignment[2] == assignment[3] && assignment[0] != assignment[2])
        #expect(Set(centres) == [Position(x: 5, y: 0), Position(x: 1005, y: 0)])
    }

    @Test func badNetworkIsAnInputError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-placement-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.net.xml").path
        try "<net>\n<junction id=\"a\" type=\"priority\" x=\"east\" y=\"0\"/>\n</net>\n".write(toFile: path, atomically: true, encoding: .utf8)
        expectInputError(file: path, line: 2, field: "x", message: "expected a number") { _ = try SumoNetwork.load(path: path) }
        let cut = dir.appendingPathComponent("cut.net.xml").path
        try String(try String(contentsOfFile: gridNetwork, encoding: .utf8).prefix(5000)).write(toFile: cut, atomically: true, encoding: .utf8)
        #expect(throws: InputError.self) { _ = try SumoNetwork.load(path: cut) }
        let far = dir.appendingPathComponent("far.net.xml").path
        try "<net>\n<junction id=\"a\" type=\"priority\" x=\"1e308\" y=\"0\"/>\n</net>\n".write(toFile: far, atomically: true, encoding: .utf8)
        expectInputError(file: far, line: 2, field: "x", message: "outside the supported range") { _ = try SumoNetwork.load(path: far) }
    }

    /// A FIFO given as any input file is refused at once (opening it to read would wait for a writer).
    @Test(.timeLimit(.minutes(1))) func aFIFOIsRefusedNotWaitedOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("convoy-fifo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("input").path
        try #require(mkfifo(fifo, 0o600) == 0)
        expectInputError(file: fifo, line: nil, field: nil, message: "is a FIFO") { _ = try SumoNetwork.load(path: fifo) }
        expectInputError(file: fifo, line: nil, field: nil, message: "is a FIFO") { _ = try Scenario.load(path: fifo) }
        expectInputError(file: fifo, line: nil, field: nil, message: "is a FIFO") { _ = try MapSpec.load(path: fifo) }
        expectInputError(file: fifo, line: nil, field: nil, message: "is a FIFO") { _ = try ArrivalFile.load(path: fifo, tasks: []) }
    }
}

/// Coverage on a hand-made map and trace.
@Suite struct CoverageTests {
    let map = try! MapSpec.parse("""
        name: tiny
        cloud: { id: cloud, compute: { device: a100-80gb } }
        edges:
          - { id: edge-1, x: 0, y: 0, rsus: [rsu-a, rsu-b] }
        rsus:
          - { id: rsu-a, x: 0, y: 0, radius: 100 }
          - { id: rsu-b, x: 150, y: 0, radius: 100 }
        """, file: "tiny.yaml")

    @Test func sharesAndPerRSUFigures() {
        var counter = CoverageCounter(map: map)
        // v1 drives along the x axis: 0 (a), 75 (a and b), 200 (b), 400 (none).
        for x in [0.0, 75, 200, 400] { counter.add(vehicle: "v1", position: Position(x: x, y: 0)) }
        // v2 stays far away; v3 sits at the edge of rsu-a's radius (exactly 100 m: covered).
        counter.add(vehicle: "v2", position: Position(x: 0, y: 500))
        counter.add(vehicle: "v3", position: Position(x: 0, y: -100))
        let report = counter.report
        #expect(report.samples == 6)
        #expect(report.coveredSamples == 4)
        #expect(abs(report.coveredShare - 4.0 / 6) < 1e-12)
        #expect(report.vehicles == 3 && report.coveredVehicles == 2)
        #expect(report.rsus == [
            .init(id: "rsu-a", samples: 3, vehicles: 2),
            .init(id: "rsu-b", samples: 2, vehicles: 1),
        ])
        #expect(report.text.contains("4 of 6 (66.7 %)"))
    }
}
