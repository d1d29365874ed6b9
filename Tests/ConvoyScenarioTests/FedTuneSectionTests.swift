import ConvoyCore
import ConvoyFederated
import ConvoyScenario
import Foundation
import Testing

/// The scenario's `fedtune:` section: the bundled scenarios, defaults, and errors that name the field.
@Suite struct FedTuneSectionTests {
    /// `tinyScenario` with a fedtune section; line 22 is `fedtune:`, its fields from line 23.
    static func scenario(_ fields: [String]) -> String {
        tinyScenario + "\nfedtune:\n" + fields.map { "  " + $0 }.joined(separator: "\n") + "\n"
    }

    static let valid = ["scheme: clustered", "model: tiny", "domains: [python, licenses]", "clients: [v1, v2, v3]", "aggregator: edge-1"]

    func load(_ text: String, in dir: borrowing TemporaryDirectory) throws -> Scenario {
        try dir.write("map.yaml", tinyMap)
        try dir.write("traces/trace.csv", "time,id,x,y\n0,v1,0,0\n")
        return try Scenario.load(path: try dir.write("scenario.yaml", text))
    }

    @Test func bundledScenariosLoad() throws {
        for (name, clients, scheme) in [("fedtune.yaml", 8, FedTuneConfig.Scheme.fedavg), ("fedtune-16.yaml", 16, .clustered)] {
            let s = try Scenario.load(path: repositoryRoot.appendingPathComponent("maps/\(name)").path)
            #expect(s.fedtune?.clients.count == clients && s.fedtune?.scheme == scheme)
            #expect(s.fedtune?.aggregator == "edge-1")
        }
    }

    @Test func defaultsAndTheSplit() throws {
        let dir = try TemporaryDirectory()
        let f = try #require(try load(Self.scenario(Self.valid), in: dir).fedtune)
        #expect(f.clusters == 2)  // clustered: one per domain by default (at most one per client)
        #expect(f.label(of: "v1") == "python" && f.label(of: "v2") == "licenses" && f.label(of: "v3") == "python")
        #expect(f.clients["v1"] == ["python": 1])  // dominant share 1 without `split:`
        #expect(f.rank == 8 && f.targets == ["q_proj", "v_proj"] && f.adapter == .lora)
        // Training time: 3 forward passes over steps × batch × sequence tokens on the device.
        #expect(f.tokensPerRound == 3 * 8 * 128)
        #expect(f.trainSeconds > 0)
    }

    @Test func badFieldsAreNamed() throws {
        let dir = try TemporaryDirectory()
        let file = dir.path("scenario.yaml")
        func expectField(_ replace: Int, _ line: String, field: String, message: String) {
            var fields = Self.valid
            if replace < fields.count { fields[replace] = line } else { fields.append(line) }
            let at = 23 + (replace < Self.valid.count ? replace : Self.valid.count)
            expectInputError(file: file, line: at, field: "fedtune.\(field)", message: message) { _ = try load(Self.scenario(fields), in: dir) }
        }
        expectField(0, "scheme: gossip", field: "scheme", message: "expected one of fedavg, clustered, hierarchical, fedasync, fedbuff, got 'gossip'")
        expectField(1, "model: llama-7b", field: "model", message: "expected one of smollm2, tiny")
        expectField(2, "domains: [python, poetry]", field: "domains", message: "unknown domain 'poetry'")
        expectField(3, "clients: []", field: "clients", message: "missing")
        expectField(4, "aggregator: v1", field: "aggregator", message: "'v1' is not an RSU, edge server or the cloud")
        expectField(9, "clusters: 4", field: "clusters", message: "4 clusters for 3 clients")
        expectField(9, "adapter: { kind: adapterfusion }", field: "adapter.kind", message: "expected one of lora, prefix, prompt")
        expectField(9, "learning_rate: 0", field: "learning_rate", message: "> 0")
        expectField(9, "rouns: 3", field: "rouns", message: "did you mean 'rounds'?")
        var hierarchical = Self.valid
        hierarchical[0] = "scheme: hierarchical"
        hierarchical[4] = "aggregator: rsu-1"
        expectInputError(file: file, line: 27, field: "fedtune.aggregator", message: "must be an edge server or the cloud, not the RSU 'rsu-1'") {
            _ = try load(Self.scenario(hierarchical), in: dir)
        }
    }
}
