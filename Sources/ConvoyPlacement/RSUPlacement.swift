import ConvoyCore
import Foundation

/// Places RSUs on a SUMO road network and assigns them to edge servers (`convoy map place`).
///
/// Candidates, in this order of preference:
/// 1. junctions with traffic lights (more incident roads first, then by id);
/// 2. major junctions: where at least three major edges meet (highest road priority first, then more
///    incident roads, then by id);
/// 3. points every `every` metres along major edges (from each edge's start; higher priority and
///    longer edges first, then by id).
///
/// An edge is major when its priority is at least `majorPriority`; by default that is the highest
/// priority whose edges (with all higher-priority ones) make up at least a quarter of the road length,
/// so a network with one priority everywhere has only major edges. A candidate is kept when it is at
/// least `spacing` metres from every RSU kept before it; placement stops at `maxRSUs`.
/// Deterministic: the same network and options give the same RSUs.
public struct RSUPlacement: Sendable, Equatable {
    public struct Options: Sendable, Equatable {
        /// Coverage radius of each RSU, metres.
        public var radius: Double = 250
        /// Minimum distance between two RSUs, metres (default: the radius).
        public var spacing: Double?
        /// Distance between candidates along major roads, metres.
        public var every: Double = 500
        /// Number of edge servers.
        public var edgeServers: Int = 3
        /// Edges with at least this priority are major (default: see the type's documentation).
        public var majorPriority: Int?
        /// At most this many RSUs (default: no limit).
        public var maxRSUs: Int?

        public init() {}

        public var effectiveSpacing: Double { spacing ?? radius }
    }

    public enum Reason: String, Sendable, Equatable {
        case trafficLight = "traffic lights"
        case majorJunction = "major junction"
        case alongRoad = "along a major road"
    }

    public struct PlacedRSU: Sendable, Equatable {
        public var id: String
        public var position: Position
        public var reason: Reason
        /// The junction id, or the edge id for a point along a road.
        public var source: String
        /// Index into `edgeServers`.
        public var edgeServer: Int
    }

    public struct EdgeServer: Sendable, Equatable {
        public var id: String
        public var position: Position
        /// Ids of its RSUs.
        public var rsus: [String]
    }

    public var rsus: [PlacedRSU]
    public var edgeServers: [EdgeServer]
    /// The priority threshold that was used for "major".
    public var majorPriority: Int

    /// Places RSUs on `network`. Throws an `InputError` naming `file` for options out of range and a
    /// network without any candidate.
    public static func place(on network: SumoNetwork, options: Options, file: String) throws -> RSUPlacement {
        guard options.radius > 0, options.effectiveSpacing >= 0, options.every > 0, options.edgeServers >= 1 else {
            throw InputError(file: file, "placement options out of range: radius and every must be > 0, spacing ≥ 0, edges ≥ 1")
        }
        let major = options.majorPriority ?? defaultMajorPriority(network.edges)
        let majorEdges = network.edges.filter { $0.priority >= major }

        // Incident roads per junction (distinct neighbours over any edge, and over major edges).
        var neighbours: [String: Set<String>] = [:]
        var majorNeighbours: [String: Set<String>] = [:]
        var topPriority: [String: Int] = [:]
        for edge in network.edges {
            neighbours[edge.from, default: []].insert(edge.to)
            neighbours[edge.to, default: []].insert(edge.from)
            if edge.priority >= major {
                majorNeighbours[edge.from, default: []].insert(edge.to)
                majorNeighbours[edge.to, default: []].insert(edge.from)
            }
            topPriority[edge.from] = max(topPriority[edge.from] ?? .min, edge.priority)
            topPriority[edge.to] = max(topPriority[edge.to] ?? .min, edge.priority)
        }
        func degree(_ id: String) -> Int { neighbours[id]?.count ?? 0 }

        var candidates: [(Position, Reason, String)] = []
        let lights = network.junctions.filter(\.hasTrafficLight)
            .sorted { degree($0.id) != degree($1.id) ? degree($0.id) > degree($1.id) : $0.id < $1.id }
        candidates += lights.map { ($0.position, .trafficLight, $0.id) }
        let majors = network.junctions
            .filter { !$0.hasTrafficLight && $0.type != "dead_end" && (majorNeighbours[$0.id]?.count ?? 0) >= 3 }
            .sorted { a, b in
                let pa = topPriority[a.id] ?? .min, pb = topPriority[b.id] ?? .min
                if pa != pb { return pa > pb }
                if degree(a.id) != degree(b.id) { return degree(a.id) > degree(b.id) }
                return a.id < b.id
            }
        candidates += majors.map { ($0.position, .majorJunction, $0.id) }
        let roads = majorEdges.sorted { a, b in
            if a.priority != b.priority { return a.priority > b.priority }
            if a.length != b.length { return a.length > b.length }
            return a.id < b.id
        }
        for edge in roads {
            var distance = options.every
            while distance < edge.length {
                candidates.append((point(along: edge.shape, at: distance), .alongRoad, edge.id))
                distance += options.every
            }
        }

        var kept: [(Position, Reason, String)] = []
        let spacing = options.effectiveSpacing
        for candidate in candidates {
            if let limit = options.maxRSUs, kept.count >= limit { break }
            if kept.allSatisfy({ $0.0.distance(to: candidate.0) >= spacing }) { kept.append(candidate) }
        }
        guard !kept.isEmpty else {
            throw InputError(file: file, "no place for an RSU: the network has no traffic lights, major junctions or major roads")
        }
        let positions = kept.map(\.0)
        let (assignment, centres) = kMeans(positions, k: min(options.edgeServers, positions.count))
        var rsus: [PlacedRSU] = []
        for (index, candidate) in kept.enumerated() {
            rsus.append(PlacedRSU(id: "rsu-\(index + 1)", position: candidate.0, reason: candidate.1, source: candidate.2,
                                  edgeServer: assignment[index]))
        }
        let servers = centres.enumerated().map { index, centre in
            EdgeServer(id: "edge-\(index + 1)", position: centre, rsus: rsus.filter { $0.edgeServer == index }.map(\.id))
        }
        return RSUPlacement(rsus: rsus, edgeServers: servers, majorPriority: major)
    }

    /// The highest priority p such that edges with priority ≥ p make up at least 25 % of the length.
    static func defaultMajorPriority(_ edges: [SumoNetwork.Edge]) -> Int {
        let total = edges.reduce(0) { $0 + $1.length }
        var byPriority: [Int: Double] = [:]
        for edge in edges { byPriority[edge.priority, default: 0] += edge.length }
        var sum = 0.0
        for (priority, length) in byPriority.sorted(by: { $0.key > $1.key }) {
            sum += length
            if sum >= 0.25 * total { return priority }
        }
        return byPriority.keys.min() ?? 0
    }

    /// The point `distance` metres along a polyline (its end if it is shorter).
    static func point(along shape: [Position], at distance: Double) -> Position {
        var remaining = distance
        for (a, b) in zip(shape, shape.dropFirst()) {
            let length = a.distance(to: b)
            if remaining <= length, length > 0 { return a.interpolated(to: b, fraction: remaining / length) }
            remaining -= length
        }
        return shape.last ?? Position(x: 0, y: 0)
    }

    /// Lloyd's k-means, seeded deterministically by farthest points: the first centre is the point
    /// nearest the centroid, each next one the point farthest from the centres so far. Returns each
    /// point's cluster and the centres (cluster centroids). Every cluster keeps at least one point.
    static func kMeans(_ points: [Position], k: Int) -> (assignment: [Int], centres: [Position]) {
        guard k > 0, !points.isEmpty else { return ([], []) }
        let centroid = Position(x: points.map(\.x).reduce(0, +) / Double(points.count),
                                y: points.map(\.y).reduce(0, +) / Double(points.count))
        var centres = [points.min { $0.distance(to: centroid) < $1.distance(to: centroid) }!]
        while centres.count < k {
            let next = points.max { a, b in
                centres.map { $0.distance(to: a) }.min()! < centres.map { $0.distance(to: b) }.min()!
            }!
            centres.append(next)
        }
        var assignment = [Int](repeating: -1, count: points.count)
        for _ in 0..<100 {
            let next = points.map { p in centres.indices.min { centres[$0].distance(to: p) < centres[$1].distance(to: p) }! }
            if next == assignment { break }
            assignment = next
            for c in centres.indices {
                let members = points.indices.filter { assignment[$0] == c }.map { points[$0] }
                guard !members.isEmpty else { continue }
                centres[c] = Position(x: members.map(\.x).reduce(0, +) / Double(members.count),
                                      y: members.map(\.y).reduce(0, +) / Double(members.count))
            }
        }
        // A cluster left empty takes the point farthest from its own centre.
        for c in centres.indices where !assignment.contains(c) {
            let loneliest = points.indices.max { centres[assignment[$0]].distance(to: points[$0]) < centres[assignment[$1]].distance(to: points[$1]) }!
            assignment[loneliest] = c
            centres[c] = points[loneliest]
        }
        return (assignment, centres)
    }

    /// The map as YAML in the format `MapSpec.parse` reads: these RSUs (no compute; each forwards to
    /// its edge server), edge servers with an RTX 4090, an A100 cloud, a macro cell over the RSUs'
    /// bounding box, and the default link parameters written out.
    public func yaml(name: String, network: String, options: Options) -> String {
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let xs = rsus.map(\.position.x), ys = rsus.map(\.position.y)
        let minX = xs.min() ?? 0, maxX = xs.max() ?? 0, minY = ys.min() ?? 0, maxY = ys.max() ?? 0
        let centre = Position(x: (minX + maxX) / 2, y: (minY + maxY) / 2)
        let macroRadius = max(options.radius, Position(x: minX, y: minY).distance(to: centre) + options.radius)
        var text = """
            # Convoy map generated by `convoy map place` from \(network).
            # RSUs: traffic lights first, then major junctions (road priority >= \(majorPriority)), then every \(f(options.every)) m
            # along major roads, at least \(f(options.effectiveSpacing)) m apart; \(edgeServers.count) edge servers by k-means.
            name: \(yamlString(name))
            cloud:
              id: cloud
              compute: { device: a100-80gb, slots: 8, queue: 64 }
            macro:
              id: macro
              x: \(f(centre.x))
              y: \(f(centre.y))
              radius: \(f(macroRadius))
            edges:

            """
        for server in edgeServers {
            text += """
                  - id: \(server.id)
                    x: \(f(server.position.x))
                    y: \(f(server.position.y))
                    rsus: [\(server.rsus.joined(separator: ", "))]
                    compute: { device: rtx-4090, slots: 8, queue: 32 }

                """
        }
        text += "rsus:\n"
        for rsu in rsus {
            text += """
                  - id: \(rsu.id)   # \(rsu.reason == .alongRoad ? "edge" : "junction") \(rsu.source.replacingOccurrences(of: "\n", with: " ")), \(rsu.reason.rawValue)
                    x: \(f(rsu.position.x))
                    y: \(f(rsu.position.y))
                    radius: \(f(options.radius))

                """
        }
        text += """
            links:
              cellular: { bandwidth_mhz: 20, tx_power_dbm: 23, noise_dbm: -80 }
              macro: { bandwidth_mhz: 10, tx_power_dbm: 23, noise_dbm: -99 }
              backhaul: { latency_ms: 2, jitter_ms: 0.2, bandwidth_mbps: 1000, loss: 0 }
              wan: { latency_ms: 30, jitter_ms: 3, bandwidth_mbps: 1000, loss: 0 }
              v2v: { range_m: 300 }

            """
        return text
    }

    private func yamlString(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}
