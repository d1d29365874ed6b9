import ConvoyCore
import ConvoyLinks
import ConvoyScenario
import Foundation
import Testing

/// A small valid map. Line numbers matter: the error tests edit single lines.
let tinyMap = """
name: tiny
cloud:
  id: cloud
  compute: { device: a100-80gb, slots: 2, queue: 4 }
edges:
  - id: edge-1
    x: 0
    y: 0
    rsus: [rsu-1]
    compute: { device: rtx-4090 }
rsus:
  - id: rsu-1
    x: 10
    y: 20.5
    radius: 250
  - id: rsu-2
    x: 300
    y: 0
    radius: 200
    compute: { device: jetson-agx-orin, slots: 1, queue: 2 }
"""

@discardableResult
private func parse(_ text: String) throws -> MapSpec { try MapSpec.parse(text, file: "map.yaml") }

@Suite struct MapSpecTests {
    @Test func tinyMapParses() throws {
        let map = try parse(tinyMap)
        #expect(map.name == "tiny")
        #expect(map.cloud.id == "cloud" && map.cloud.compute == ComputeSpec(device: "a100-80gb", slots: 2, queue: 4))
        #expect(map.macro == nil)
        #expect(map.edges.map(\.id) == ["edge-1"] && map.edges[0].rsus == ["rsu-1"])
        #expect(map.edges[0].compute == ComputeSpec(device: "rtx-4090", slots: 1, queue: 8), "slots and queue default to 1 and 8")
        #expect(map.rsus.map(\.id) == ["rsu-1", "rsu-2"])
        #expect(map.rsus[0].position == Position(x: 10, y: 20.5) && map.rsus[0].radius == 250)
        #expect(map.rsus[0].edge == "edge-1" && map.rsus[0].compute == nil)
        #expect(map.rsus[1].edge == nil && map.rsus[1].compute?.profile.name == "jetson-agx-orin")
        #expect(map.links == LinkSettings(), "no links: all defaults")
        #expect(map.role(of: "cloud") == .cloud && map.role(of: "edge-1") == .edge && map.role(of: "rsu-2") == .rsu)
        #expect(map.role(of: "nobody") == nil)
        #expect(map.rsu("rsu-2")?.radius == 200 && map.rsu("edge-1") == nil && map.edge("edge-1")?.id == "edge-1")
    }

    @Test func bundledMonacoMapLoads() throws {
        let map = try MapSpec.load(path: repositoryRoot.appendingPathComponent("maps/monaco.yaml").path)
        #expect(map.name == "monaco")
        #expect(map.rsus.count == 10 && map.edges.count == 3)
        #expect(Set(map.rsus.map(\.id)) == Set((1...10).map { "rsu-\($0)" }))
        #expect(map.rsus.allSatisfy { $0.edge != nil }, "every RSU has an edge server")
        // The edges' lists partition the RSUs.
        #expect(map.edges.flatMap(\.rsus).sorted() == map.rsus.map(\.id).sorted())
        for edge in map.edges {
            for rsu in edge.rsus { #expect(map.rsu(rsu)?.edge == edge.id) }
            #expect(edge.compute?.device == "rtx-4090")
        }
        #expect(map.rsu("rsu-9")?.edge == "edge-3" && map.rsu("rsu-6")?.edge == "edge-2" && map.rsu("rsu-1")?.edge == "edge-1")
        #expect(map.rsus.filter { $0.compute != nil }.map(\.id) == ["rsu-2", "rsu-3", "rsu-4", "rsu-7", "rsu-9"])
        #expect(map.rsus.allSatisfy { $0.radius == 250 })
        #expect(map.rsu("rsu-1")?.position == Position(x: 641.1, y: 520.9))
        #expect(map.cloud.compute == ComputeSpec(device: "a100-80gb", slots: 8, queue: 64))
        let macro = try #require(map.macro)
        #expect(macro.id == "macro" && macro.position == Position(x: 1094.3, y: 1049.4) && macro.radius == 1650)
        #expect(map.links.macro.bandwidthHz == 10e6 && map.links.macro.noiseDBm == -99)
        #expect(map.links.cellular.bandwidthHz == 20e6 && map.links.cellular.noiseDBm == -80)
        #expect(isClose(map.links.wan.latency, 0.030) && isClose(map.links.wan.jitter, 0.003) && map.links.wan.bandwidthBitsPerSecond == 1e9)
        #expect(isClose(map.links.backhaul.latency, 0.002) && isClose(map.links.backhaul.jitter, 0.0002))
        #expect(map.links.v2v.rangeM == 300)
        // Every device the map names is in the catalog, and every node id is unique.
        let ids = [map.cloud.id, map.macro!.id] + map.edges.map(\.id) + map.rsus.map(\.id)
        #expect(Set(ids).count == ids.count)
    }

    @Test func linkParametersAreConvertedToSIUnits() throws {
        let text = tinyMap + """

        links:
          cellular: { bandwidth_mhz: 40, tx_power_dbm: 20, noise_dbm: -90, max_rate_mbps: 150, loss: 0.01, activity_window: 0.5 }
          macro: { bandwidth_mhz: 5 }
          backhaul: { latency_ms: 5, jitter_ms: 0.5, bandwidth_mbps: 100, loss: 0.001 }
          wan: { latency_ms: 45, bandwidth_mbps: 250 }
          v2v: { range_m: 150, bandwidth_mhz: 20, frequency_ghz: 5.9, tx_power_dbm: 20, noise_dbm: -98 }
        """
        let links = try parse(text).links
        #expect(links.cellular == CellularParameters(bandwidthHz: 40e6, txPowerDBm: 20, noiseDBm: -90, maxRateBitsPerSecond: 150e6,
                                                     activityWindow: 0.5, residualLoss: 0.01))
        // Unset fields keep the defaults of that link.
        #expect(links.macro == CellularParameters(bandwidthHz: 5e6))
        #expect(isClose(links.backhaul.latency, 0.005) && isClose(links.backhaul.jitter, 0.0005))
        #expect(links.backhaul.bandwidthBitsPerSecond == 100e6 && links.backhaul.loss == 0.001)
        #expect(isClose(links.wan.latency, 0.045) && links.wan.bandwidthBitsPerSecond == 250e6)
        #expect(isClose(links.wan.jitter, WiredParameters.wanDefault.jitter) && links.wan.loss == 0)
        #expect(links.v2v == V2VParameters(frequencyGHz: 5.9, bandwidthHz: 20e6, txPowerDBm: 20, noiseDBm: -98, rangeM: 150))
        #expect(links.cellular.problems.isEmpty && links.backhaul.problems.isEmpty && links.v2v.problems.isEmpty)
    }

    @Test func defaultLinkSettings() {
        let links = LinkSettings()
        #expect(links.cellular == CellularParameters() && links.macro.bandwidthHz == 10e6)
        #expect(links.backhaul == WiredParameters.backhaulDefault && links.wan == WiredParameters.wanDefault)
    }

    // MARK: - Errors

    @Test func unknownKeyIsReportedAtItsLine() {
        // A typo of an optional key: rejected rather than ignored.
        expectInputError(file: "map.yaml", line: 20, field: "rsus[1].compte", message: "unknown key") {
            try parse(edited(tinyMap, [20: "    compte: { device: jetson-agx-orin }"]))
        }
        expectInputError(line: 10, field: "edges[0].compute.slot", message: "unknown key") {
            try parse(edited(tinyMap, [10: "    compute: { device: rtx-4090, slot: 2 }"]))
        }
        expectInputError(line: 21, field: "linkz", message: "unknown key") { try parse(tinyMap + "\nlinkz: {}") }
        expectInputError(line: 22, field: "links.wan.latency", message: "unknown key") {
            try parse(tinyMap + "\nlinks:\n  wan: { latency: 5 }")
        }
        expectInputError(line: 4, field: "cloud.idd", message: "unknown key") {
            try parse(edited(tinyMap, [3: "  id: cloud\n  idd: cloud"]))
        }
    }

    @Test func missingRequiredField() {
        // The line of the mapping that lacks the field.
        expectInputError(line: 12, field: "rsus[0].radius", message: "missing (required)") {
            try parse(edited(tinyMap, [15: "    # no radius"]))
        }
        expectInputError(line: 16, field: "rsus[1].y", message: "missing (required)") {
            try parse(edited(tinyMap, [18: "    #"]))
        }
        expectFieldError(field: "name") { try parse(edited(tinyMap, [1: "# no name"])) }
        expectFieldError(field: "cloud.compute") { try parse(edited(tinyMap, [4: "  # no compute"])) }
        expectFieldError(field: "cloud.compute.device") { try parse(edited(tinyMap, [4: "  compute: { slots: 2 }"])) }
        expectFieldError(field: "cloud") {
            try parse(edited(tinyMap, [2: "# no cloud", 3: "#", 4: "#"]))
        }
        expectFieldError(field: "rsus") {
            try parse(edited(tinyMap, [9: "    rsus: []", 11: "rsus: []", 12: "#", 13: "#", 14: "#", 15: "#", 16: "#", 17: "#", 18: "#", 19: "#", 20: "#"]))
        }
    }

    private func expectFieldError(field: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void) {
        let error = #expect(throws: InputError.self, sourceLocation: sourceLocation) { try body() }
        #expect(error?.field == field, "\(String(describing: error))", sourceLocation: sourceLocation)
        #expect(error?.file == "map.yaml", sourceLocation: sourceLocation)
        #expect(error?.line != nil, "\(String(describing: error))", sourceLocation: sourceLocation)
    }

    @Test func nonNumericCoordinate() {
        expectInputError(line: 13, field: "rsus[0].x", message: "expected a number, got 'ten'") {
            try parse(edited(tinyMap, [13: "    x: ten"]))
        }
        expectInputError(line: 7, field: "edges[0].x", message: "expected a number") {
            try parse(edited(tinyMap, [7: "    x: [1, 2]"]))
        }
        expectInputError(line: 14, field: "rsus[0].y", message: "expected a number") {
            try parse(edited(tinyMap, [14: "    y: .nan"]))
        }
    }

    @Test func nonPositiveRadius() {
        expectInputError(line: 15, field: "rsus[0].radius", message: "expected a number > 0") {
            try parse(edited(tinyMap, [15: "    radius: -5"]))
        }
        expectInputError(line: 19, field: "rsus[1].radius", message: "expected a number > 0") {
            try parse(edited(tinyMap, [19: "    radius: 0"]))
        }
    }

    @Test func unknownDevice() {
        let error = expectInputError(line: 20, field: "rsus[1].compute.device", message: "unknown device 'tpu-v9'") {
            try parse(edited(tinyMap, [20: "    compute: { device: tpu-v9 }"]))
        }
        #expect(error?.message.contains("jetson-agx-orin") == true, "the message lists the known devices")
    }

    @Test func invalidComputeCounts() {
        expectInputError(line: 20, field: "rsus[1].compute.slots", message: "≥ 1") {
            try parse(edited(tinyMap, [20: "    compute: { device: jetson-agx-orin, slots: 0 }"]))
        }
        expectInputError(line: 20, field: "rsus[1].compute.slots", message: "expected an integer") {
            try parse(edited(tinyMap, [20: "    compute: { device: jetson-agx-orin, slots: 1.5 }"]))
        }
        expectInputError(line: 20, field: "rsus[1].compute.queue", message: "≥ 0") {
            try parse(edited(tinyMap, [20: "    compute: { device: jetson-agx-orin, queue: -1 }"]))
        }
    }

    @Test func edgeListsAnRSUThatDoesNotExist() {
        expectInputError(line: 6, field: "edges.edge-1.rsus", message: "'rsu-9' is not an RSU of this map") {
            try parse(edited(tinyMap, [9: "    rsus: [rsu-1, rsu-9]"]))
        }
        expectInputError(line: 9, field: "edges[0].rsus", message: "expected a list") {
            try parse(edited(tinyMap, [9: "    rsus: rsu-1"]))
        }
    }

    @Test func rsuServedByTwoEdges() {
        let text = edited(tinyMap, [10: "    compute: { device: rtx-4090 }\n  - { id: edge-2, x: 5, y: 5, rsus: [rsu-2, rsu-1] }"])
        expectInputError(line: 11, field: "edges.edge-2.rsus", message: "'rsu-1' is already served by edge-1") { try parse(text) }
        // Listed twice by the same edge.
        expectInputError(line: 6, field: "edges.edge-1.rsus", message: "'rsu-1' is already served by edge-1") {
            try parse(edited(tinyMap, [9: "    rsus: [rsu-1, rsu-1]"]))
        }
    }

    @Test func duplicateIds() {
        expectInputError(line: 16, field: "id", message: "node id 'rsu-1' is used twice") {
            try parse(edited(tinyMap, [16: "  - id: rsu-1"]))
        }
        expectInputError(line: 12, field: "id", message: "node id 'cloud' is used twice") {
            try parse(edited(tinyMap, [12: "  - id: cloud", 9: "    rsus: []"]))
        }
        expectInputError(line: 6, field: "id", message: "node id 'rsu-2' is used twice") {
            try parse(edited(tinyMap, [6: "  - id: rsu-2"]))
        }
    }

    @Test func rsuWithNeitherComputeNorEdge() {
        expectInputError(line: 12, field: "rsus.rsu-1", message: "neither compute nor an edge server") {
            try parse(edited(tinyMap, [9: "    rsus: []"]))
        }
    }

    @Test func invalidYAML() throws {
        let error = try #require(throws: InputError.self) { try parse(edited(tinyMap, [13: "    x: [10"])) }
        #expect(error.file == "map.yaml")
        #expect(error.message.hasPrefix("not valid YAML"))
        let line = try #require(error.line)
        #expect((13...15).contains(line), "\(error)")
        let tabs = try #require(throws: InputError.self) { try parse("name: a\ncloud:\n\t id: x\n") }
        #expect(tabs.line == 3, "\(tabs)")
    }

    @Test func emptyFileOrNotAMapping() {
        expectInputError(line: 1, field: nil, message: "the file is empty") { try parse("") }
        expectInputError(line: 1, field: nil, message: "the file is empty") { try parse("# only a comment\n\n") }
        expectInputError(line: 1, field: nil, message: "expected a mapping") { try parse("- a\n- b\n") }
        expectInputError(line: 12, field: "rsus[0]", message: "expected a mapping") {
            try parse(edited(tinyMap, [12: "  - rsu-1", 13: "", 14: "", 15: ""]))
        }
    }

    @Test func outOfRangeLinkParameters() {
        expectInputError(line: 22, field: "links.cellular.loss", message: "≤ 1") {
            try parse(tinyMap + "\nlinks:\n  cellular: { loss: 1.5 }")
        }
        expectInputError(line: 22, field: "links.backhaul.bandwidth_mbps", message: "> 0") {
            try parse(tinyMap + "\nlinks:\n  backhaul: { bandwidth_mbps: 0 }")
        }
        expectInputError(line: 22, field: "links.wan.latency_ms", message: "≥ 0") {
            try parse(tinyMap + "\nlinks:\n  wan: { latency_ms: -1 }")
        }
    }

    @Test func unreadableMapFile() {
        expectInputError(file: "/nonexistent/convoy/map.yaml", line: nil, field: nil, message: "no such file (expected the map") {
            _ = try MapSpec.load(path: "/nonexistent/convoy/map.yaml")
        }
    }
}

func isClose(_ a: Double, _ b: Double, _ tolerance: Double = 1e-12) -> Bool { abs(a - b) <= tolerance }

@Suite("Per-RSU link overrides")
struct RSULinkOverrideTests {
    @Test func anRSUsOwnCellAndBackhaulStartFromTheMapWideValues() throws {
        let yaml = """
        name: m
        cloud: { id: cloud, compute: { device: a100-80gb } }
        edges:
          - { id: e, x: 0, y: 0, rsus: [a, b] }
        rsus:
          - { id: a, x: 0, y: 0, radius: 100, cellular: { bandwidth_mhz: 40, rate_model: lte-cqi }, backhaul: { latency_ms: 8 } }
          - { id: b, x: 10, y: 0, radius: 100 }
        links:
          cellular: { noise_dbm: -90 }
          backhaul: { jitter_ms: 1 }
        """
        let map = try MapSpec.parse(yaml, file: "m.yaml")
        let a = try #require(map.rsu("a")), b = try #require(map.rsu("b"))
        #expect(map.cellular(of: a).bandwidthHz == 40e6)
        #expect(map.cellular(of: a).noiseDBm == -90)
        #expect(map.cellular(of: a).rateModel == .lteCQI)
        #expect(map.cellular(of: b) == map.links.cellular)
        #expect(map.backhaul(of: a).latency == 0.008)
        #expect(map.backhaul(of: a).jitter == 0.001)
        #expect(map.backhaul(of: b).latency == 0.002)
    }

    @Test func anUnknownRateModelIsAnErrorAtItsLine() {
        let yaml = """
        name: m
        cloud: { id: cloud, compute: { device: a100-80gb } }
        rsus:
          - { id: a, x: 0, y: 0, radius: 100, compute: { device: rtx-4090 } }
        links:
          cellular:
            rate_model: 5g-magic
        """
        #expect {
            try MapSpec.parse(yaml, file: "m.yaml")
        } throws: { error in
            let e = error as? InputError
            return e?.line == 7 && e?.field == "links.cellular.rate_model" && e?.message.contains("lte-cqi") == true
        }
    }
}
