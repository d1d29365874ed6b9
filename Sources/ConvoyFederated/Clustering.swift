/// Clustered federated learning's grouping: clients whose updates point the same way share an
/// adapter. The similarity is the cosine of the clients' update directions (update − the global
/// they started from), as in Sattler et al.'s CFL.
public enum Clustering {
    /// Spherical k-means on the update directions, deterministic: clients in `vehicle` order; the
    /// first centre is the first client's direction, each next one the client least similar to
    /// every centre so far (farthest-point seeding); then at most 50 assign/update steps. Returns
    /// each vehicle's cluster in 0..<k (k is capped at the number of clients).
    public static func kMeans(_ directions: [String: Adapter], k: Int) -> [String: Int] {
        let vehicles = directions.keys.sorted()
        guard !vehicles.isEmpty, k >= 1 else { return [:] }
        let k = min(k, vehicles.count)
        let unit = vehicles.map { v -> Adapter in
            let d = directions[v]!
            let n = d.norm
            return n > 0 ? Adapter(d.values.map { Float(Double($0) / n) }) : d
        }
        var centres = [unit[0]]
        while centres.count < k {
            let next = unit.indices.min { a, b in
                let sa = centres.map { unit[a].cosine($0) }.max()!, sb = centres.map { unit[b].cosine($0) }.max()!
                return (sa, a) < (sb, b)
            }!
            centres.append(unit[next])
        }
        var assignment = [Int](repeating: -1, count: unit.count)
        for _ in 0..<50 {
            let next = unit.map { u in centres.indices.max { (u.cosine(centres[$0]), -$0) < (u.cosine(centres[$1]), -$1) }! }
            if next == assignment { break }
            assignment = next
            for c in centres.indices {
                let members = unit.indices.filter { assignment[$0] == c }
                guard !members.isEmpty else { continue }
                centres[c] = Aggregation.fedAvg(members.map { (unit[$0], 1.0) })!
            }
        }
        return Dictionary(uniqueKeysWithValues: zip(vehicles, assignment))
    }

    /// Groups from given labels (e.g. each client's main data domain): labels in sorted order are
    /// clusters 0, 1, …
    public static func byLabel(_ labels: [String: String]) -> [String: Int] {
        let order = Set(labels.values).sorted()
        return labels.mapValues { order.firstIndex(of: $0)! }
    }
}
