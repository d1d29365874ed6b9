import ConvoyCore
import ConvoyLinks
import ConvoyReasoning
import Foundation
import Yams

/// Compute capacity of a node (map `compute:`).
public struct ComputeSpec: Sendable, Equatable, Codable {
    public var device: String
    public var slots: Int
    public var queue: Int
    /// A real model server that does this compute's work (nil: the roofline model of `device`).
    public var backend: BackendSpec?
    /// A profile measured by `convoy calibrate` (map: `calibration: FILE`), used instead of the
    /// roofline model for its model.
    public var calibration: MeasuredProfile?

    public init(device: String, slots: Int, queue: Int, backend: BackendSpec? = nil, calibration: MeasuredProfile? = nil) {
        self.device = device
        self.slots = slots
        self.queue = queue
        self.backend = backend
        self.calibration = calibration
    }

    public var profile: DeviceProfile { DeviceProfile.catalog[device]! }

    /// Seconds of compute for one request on an idle slot: the calibrated profile for its model,
    /// else the roofline model; nil for a model unknown or too big for the device.
    public func inferenceTime(model name: String, inputTokens: Int, outputTokens: Int) -> Double? {
        guard let model = ModelProfile.catalog[name], ComputeModel.fits(model: model, device: profile) else { return nil }
        return ComputeModel.inferenceTime(model: model, device: profile, measured: calibration, inputTokens: inputTokens,
                                          outputTokens: outputTokens)
    }

    /// The modelled compute of this spec (the roofline model, or its calibrated profile).
    public func modelledBackend() -> ModelledCompute {
        ModelledCompute(device: profile, slots: slots, queueCapacity: queue, measured: calibration)
    }

    /// The compute as the map says: its real model server (`backend:`), whose first estimate is
    /// the modelled one, or else the modelled compute.
    public func makeBackend() -> any ComputeBackend {
        guard let backend else { return modelledBackend() }
        return ModelServerCompute(model: backend.model, slots: slots, queueCapacity: queue, timeScale: backend.timeScale,
                                  initialEstimate: inferenceTime(model: backend.model, inputTokens: 256, outputTokens: 32) ?? 1)
    }
}

/// A real model server behind an OpenAI-compatible HTTP API (map: `backend:` under `compute:`).
public struct BackendSpec: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case openai }
    public enum API: String, Sendable, Codable, CaseIterable {
        /// `POST /v1/completions` with the prompt as is.
        case completions
        /// `POST /v1/chat/completions` with the prompt as one user message (the server applies the
        /// model's chat template).
        case chat
    }

    public var kind: Kind
    /// The server's base URL, e.g. `http://127.0.0.1:8077` (the API paths are appended).
    public var url: String
    /// The model name sent to the server; also the only model of the task mix this compute serves.
    public var model: String
    public var api: API
    /// Emulated compute time = `timeScale` × measured wall time (0.25: a device 4× faster than this one).
    public var timeScale: Double
    /// A call longer than this (wall seconds) fails as a time-out.
    public var timeout: Double
    /// A stream silent for this long (wall seconds) fails as stalled.
    public var stall: Double

    public init(kind: Kind = .openai, url: String, model: String, api: API = .completions, timeScale: Double = 1,
                timeout: Double = 60, stall: Double = 10) {
        self.kind = kind
        self.url = url
        self.model = model
        self.api = api
        self.timeScale = timeScale
        self.timeout = timeout
        self.stall = stall
    }
}

public struct RSUSpec: Sendable, Equatable, Codable {
    public var id: String
    public var position: Position
    public var radius: Double
    public var compute: ComputeSpec?
    /// The edge server that serves this RSU (from the edges' `rsus:` lists).
    public var edge: String?
    /// This RSU's own cell and backhaul parameters, if the map overrides the map-wide `links:`.
    public var cellular: CellularParameters?
    public var backhaul: WiredParameters?
}

public struct EdgeSpec: Sendable, Equatable, Codable {
    public var id: String
    public var position: Position
    public var rsus: [String]
    public var compute: ComputeSpec?
}

public struct CloudSpec: Sendable, Equatable, Codable {
    public var id: String
    public var compute: ComputeSpec
}

public struct MacroSpec: Sendable, Equatable, Codable {
    public var id: String
    public var position: Position
    public var radius: Double
}

/// Link parameters of a map (`links:`); every field has a default.
public struct LinkSettings: Sendable, Equatable, Codable {
    public var cellular = CellularParameters()
    public var macro = CellularParameters(bandwidthHz: 10e6)
    public var backhaul = WiredParameters.backhaulDefault
    public var wan = WiredParameters.wanDefault
    public var v2v = V2VParameters()

    public init() {}
}

/// A map: RSUs, edge servers, the cloud, an optional macro cell, and link parameters.
/// The format is documented in the README ("Maps").
public struct MapSpec: Sendable, Equatable, Codable {
    public var name: String
    public var cloud: CloudSpec
    public var macro: MacroSpec?
    public var edges: [EdgeSpec]
    public var rsus: [RSUSpec]
    public var links: LinkSettings

    public static func load(path: String) throws -> MapSpec {
        try parse(try YAMLFields.readText(path, what: "map"), file: path)
    }

    public static func parse(_ text: String, file: String) throws -> MapSpec {
        var root = try YAMLFields.document(text, file: file)
        let name = try root.string("name")

        guard var cloudFields = try root.nested("cloud") else { throw root.error("cloud", "missing (required)") }
        let cloud = CloudSpec(id: try cloudFields.string("id"),
                              compute: try compute(&cloudFields, required: true)!)
        try cloudFields.rejectUnknownKeys()

        var macro: MacroSpec?
        var macroNode: Node?
        if var m = try root.nested("macro") {
            macroNode = m.node
            macro = MacroSpec(id: try m.string("id"), position: try position(&m), radius: try m.double("radius", above: 0))
            try m.rejectUnknownKeys()
        }

        var rsus: [RSUSpec] = []
        var rsuNodes: [Node] = []
        var rsuOverrides: [(cellular: YAMLFields?, backhaul: YAMLFields?)] = []
        for node in try root.list("rsus") {
            var r = try YAMLFields(node, file: file, path: "rsus[\(rsus.count)]")
            rsus.append(RSUSpec(id: try r.string("id"), position: try position(&r), radius: try r.double("radius", above: 0),
                                compute: try compute(&r, required: false), edge: nil))
            rsuOverrides.append((try r.nested("cellular"), try r.nested("backhaul")))
            rsuNodes.append(node)
            try r.rejectUnknownKeys()
        }
        var edges: [EdgeSpec] = []
        var edgeNodes: [Node] = []
        for node in try root.list("edges") {
            var e = try YAMLFields(node, file: file, path: "edges[\(edges.count)]")
            edges.append(EdgeSpec(id: try e.string("id"), position: try position(&e), rsus: try e.stringList("rsus"),
                                  compute: try compute(&e, required: false)))
            edgeNodes.append(node)
            try e.rejectUnknownKeys()
        }
        var links = LinkSettings()
        if var l = try root.nested("links") {
            if var c = try l.nested("cellular") { links.cellular = try cellular(&c, defaults: links.cellular) }
            if var c = try l.nested("macro") { links.macro = try cellular(&c, defaults: links.macro) }
            if var w = try l.nested("backhaul") { links.backhaul = try wired(&w, defaults: links.backhaul) }
            if var w = try l.nested("wan") { links.wan = try wired(&w, defaults: links.wan) }
            if var v = try l.nested("v2v") {
                links.v2v.rangeM = try v.double("range_m", default: links.v2v.rangeM, above: 0)
                links.v2v.txPowerDBm = try v.double("tx_power_dbm", default: links.v2v.txPowerDBm)
                links.v2v.noiseDBm = try v.double("noise_dbm", default: links.v2v.noiseDBm)
                links.v2v.bandwidthHz = try v.double("bandwidth_mhz", default: links.v2v.bandwidthHz / 1e6, above: 0) * 1e6
                links.v2v.frequencyGHz = try v.double("frequency_ghz", default: links.v2v.frequencyGHz, above: 0)
                try v.rejectUnknownKeys()
            }
            try l.rejectUnknownKeys()
        }
        // Per-RSU overrides start from the map-wide values.
        for (i, (cellularFields, backhaulFields)) in rsuOverrides.enumerated() {
            if var c = cellularFields { rsus[i].cellular = try cellular(&c, defaults: links.cellular) }
            if var w = backhaulFields { rsus[i].backhaul = try wired(&w, defaults: links.backhaul) }
        }
        try root.rejectUnknownKeys()

        // Cross-references.
        guard !rsus.isEmpty else { throw root.error("rsus", "a map needs at least one RSU") }
        // Every id must be unique, carried by the wire, and distinct as a file name.
        let named = [(cloud.id, cloudFields.node)] + (macroNode.map { [(macro!.id, $0)] } ?? [])
            + Array(zip(rsus.map(\.id), rsuNodes)) + Array(zip(edges.map(\.id), edgeNodes))
        var lines: [String: Int] = [:], byFileName: [String: String] = [:]
        for (id, node) in named {
            let line = node["id"]?.mark?.line ?? node.mark?.line ?? 0
            if let problem = NodeID.problem(with: id) { throw InputError(file: file, line: line, field: "id", problem) }
            if let earlier = lines[id] {
                throw InputError(file: file, line: line, field: "id", "node id '\(id)' is used twice (also at line \(earlier))")
            }
            let fileName = NodeID.fileName(of: id)
            if let other = byFileName[fileName] {
                throw InputError(file: file, line: line, field: "id",
                                 "node ids '\(other)' (line \(lines[other] ?? 0)) and '\(id)' both become '\(fileName)' as a file "
                                 + "and endpoint name (characters other than letters, digits and - become _); rename one")
            }
            lines[id] = line
            byFileName[fileName] = id
        }
        for (edge, node) in zip(edges, edgeNodes) {
            for rsu in edge.rsus {
                guard let index = rsus.firstIndex(where: { $0.id == rsu }) else {
                    throw InputError(file: file, line: node.mark?.line, field: "edges.\(edge.id).rsus",
                                     "'\(rsu)' is not an RSU of this map")
                }
                if let other = rsus[index].edge {
                    throw InputError(file: file, line: node.mark?.line, field: "edges.\(edge.id).rsus",
                                     "'\(rsu)' is already served by \(other)")
                }
                rsus[index].edge = edge.id
            }
        }
        for (rsu, node) in zip(rsus, rsuNodes) where rsu.edge == nil && rsu.compute == nil {
            throw InputError(file: file, line: node.mark?.line, field: "rsus.\(rsu.id)",
                             "has neither compute nor an edge server: it could serve nothing")
        }
        return MapSpec(name: name, cloud: cloud, macro: macro, edges: edges, rsus: rsus, links: links)
    }

    private static func position(_ f: inout YAMLFields) throws -> Position {
        // Within the bound the trace readers apply, so every cell and grid computation stays finite.
        Position(x: try f.double("x", min: -Position.maxCoordinate, max: Position.maxCoordinate),
                 y: try f.double("y", min: -Position.maxCoordinate, max: Position.maxCoordinate))
    }

    static func compute(_ f: inout YAMLFields, required: Bool, key: String = "compute") throws -> ComputeSpec? {
        guard var c = try f.nested(key) else {
            if required { throw f.error(key, "missing (required)") }
            return nil
        }
        let device = try c.string("device")
        guard DeviceProfile.catalog[device] != nil else {
            throw c.error("device", "unknown device '\(device)' (known: \(DeviceProfile.catalog.keys.sorted().joined(separator: ", ")))")
        }
        var spec = ComputeSpec(device: device, slots: try c.int("slots", default: 1, min: 1), queue: try c.int("queue", default: 8, min: 0))
        if var b = try c.nested("backend") {
            let kind = try b.string("kind")
            guard let parsedKind = BackendSpec.Kind(rawValue: kind) else {
                throw b.error("kind", "unknown backend kind '\(kind)' (known: \(BackendSpec.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let url = try b.string("url")
            guard let parsed = URLComponents(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host?.isEmpty == false else {
                throw b.error("url", "expected an http:// or https:// URL with a host, found '\(url)'")
            }
            let model = try b.string("model")
            guard ModelProfile.catalog[model] != nil else {
                throw b.error("model", "unknown model '\(model)' (known: \(ModelProfile.catalog.keys.sorted().joined(separator: ", ")))")
            }
            let api = try b.optionalString("api") ?? BackendSpec.API.completions.rawValue
            guard let parsedAPI = BackendSpec.API(rawValue: api) else {
                throw b.error("api", "expected completions or chat, found '\(api)'")
            }
            spec.backend = BackendSpec(kind: parsedKind, url: url, model: model, api: parsedAPI,
                                       timeScale: try b.optionalDouble("time_scale", above: 0, max: 1e6) ?? 1,
                                       timeout: try b.optionalDouble("timeout", above: 0, max: 86_400) ?? 60,
                                       stall: try b.optionalDouble("stall", above: 0, max: 86_400) ?? 10)
            try b.rejectUnknownKeys()
        }
        if let path = try c.optionalString("calibration") {
            let resolved = path.hasPrefix("/") ? path : URL(fileURLWithPath: c.file).deletingLastPathComponent().appendingPathComponent(path).path
            do {
                spec.calibration = try JSONDecoder().decode(MeasuredProfile.self, from: readWholeFile(path: resolved, expected: "a calibration profile (JSON, from convoy calibrate)"))
            } catch let error as InputError {
                throw c.error("calibration", error.message)
            } catch {
                throw c.error("calibration", "\(resolved) is not a calibration profile written by convoy calibrate: \(error)")
            }
            if let model = spec.calibration?.model, ModelProfile.catalog[model] == nil {
                throw c.error("calibration", "the profile is for '\(model)', which is not a known model")
            }
        }
        try c.rejectUnknownKeys()
        return spec
    }

    private static func cellular(_ f: inout YAMLFields, defaults: CellularParameters) throws -> CellularParameters {
        var p = defaults
        p.bandwidthHz = try f.double("bandwidth_mhz", default: p.bandwidthHz / 1e6, above: 0) * 1e6
        p.txPowerDBm = try f.double("tx_power_dbm", default: p.txPowerDBm)
        p.noiseDBm = try f.double("noise_dbm", default: p.noiseDBm)
        p.maxRateBitsPerSecond = try f.optionalDouble("max_rate_mbps", above: 0).map { $0 * 1e6 } ?? p.maxRateBitsPerSecond
        p.residualLoss = try f.double("loss", default: p.residualLoss, min: 0, max: 1)
        p.activityWindow = try f.double("activity_window", default: p.activityWindow, above: 0)
        if let model = try f.optionalString("rate_model") {
            guard let m = CellularRateModel(rawValue: model) else {
                throw f.error("rate_model", "expected one of \(CellularRateModel.allCases.map(\.rawValue).joined(separator: ", ")), got '\(model)'")
            }
            p.rateModel = m
        }
        try f.rejectUnknownKeys()
        return p
    }

    private static func wired(_ f: inout YAMLFields, defaults: WiredParameters) throws -> WiredParameters {
        var p = defaults
        p.latency = try f.double("latency_ms", default: p.latency * 1e3, min: 0) / 1e3
        p.jitter = try f.double("jitter_ms", default: p.jitter * 1e3, min: 0) / 1e3
        p.bandwidthBitsPerSecond = try f.double("bandwidth_mbps", default: p.bandwidthBitsPerSecond / 1e6, above: 0) * 1e6
        p.loss = try f.double("loss", default: p.loss, min: 0, max: 1)
        try f.rejectUnknownKeys()
        return p
    }

    public func rsu(_ id: String) -> RSUSpec? { rsus.first { $0.id == id } }

    /// The cell parameters of an RSU: its own if the map overrides them, else the map's.
    public func cellular(of rsu: RSUSpec) -> CellularParameters { rsu.cellular ?? links.cellular }

    /// The backhaul parameters of an RSU: its own if the map overrides them, else the map's.
    public func backhaul(of rsu: RSUSpec) -> WiredParameters { rsu.backhaul ?? links.backhaul }
    public func edge(_ id: String) -> EdgeSpec? { edges.first { $0.id == id } }

    /// The compute of server `id` (RSU, edge server or cloud), if it has one.
    public func compute(of id: String) -> ComputeSpec? {
        id == cloud.id ? cloud.compute : rsu(id)?.compute ?? edge(id)?.compute
    }

    /// Role of an infrastructure node id of this map.
    public func role(of id: String) -> NodeRole? {
        if id == cloud.id { return .cloud }
        if rsus.contains(where: { $0.id == id }) { return .rsu }
        if edges.contains(where: { $0.id == id }) { return .edge }
        return nil
    }
}
